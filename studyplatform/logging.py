"""Log filters that keep personal data out of every log line.

A participant's token is their key to a participation (``/p/<uuid>/`` URLs), and panel ids
(``PROLIFIC_PID``, ``workerId``...) identify people. Both reach logs through request paths,
query strings and referrers: Django's "Not Found: /p/<uuid>/..." warnings, tracebacks, and
gunicorn's access log. ``RedactPersonalData`` rewrites a record's message (with its
arguments merged in) before any handler formats it, so whatever the format, neither appears.
"""

from __future__ import annotations

import logging
import re

_HEX = "[0-9a-fA-F]"
_TOKEN = re.compile(rf"/p/{_HEX}{{8}}-?{_HEX}{{4}}-?{_HEX}{{4}}-?{_HEX}{{4}}-?{_HEX}{{12}}")
# Query strings are never needed in a log line: they are where panel ids, preview keys and
# answers of a GET form travel. Everything from "?" to the next space or quote goes.
_QUERY = re.compile(r"\?[^\s\"']+")
# API tokens (DRF authtoken keys are 40 hex digits), e.g. in an echoed Authorization header.
_API_TOKEN = re.compile(r"\b[0-9a-fA-F]{40}\b")
# Panel ids posted as form fields or named in messages outside a query string.
_PANEL_PARAMETER = re.compile(
    r"\b(PROLIFIC_PID|STUDY_ID|SESSION_ID|workerId|assignmentId|hitId|panel_id|participant_id|PSID|rid|token)"
    r"(\s*[=:]\s*)[^\s&\"',;]+",
    re.IGNORECASE,
)


def redact(text: str) -> str:
    """``text`` without participant tokens, query strings or panel-id values."""
    text = _TOKEN.sub("/p/<token>", text)
    text = _QUERY.sub("?<query>", text)
    text = _API_TOKEN.sub("<api-token>", text)
    return _PANEL_PARAMETER.sub(r"\1\2<redacted>", text)


class RedactPersonalData(logging.Filter):
    """Masks tokens, query strings and panel ids in a record's message and exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True
