"""gunicorn settings of a Credence web server: `gunicorn -c studyplatform/gunicorn.conf.py
studyplatform.wsgi:application` (docker-compose.yml and the Dockerfile do).

The access log names each request by its path without the query string (where panel ids
travel: ``?PROLIFIC_PID=...``) and without the referrer (the previous page's full URL); and
every gunicorn log line, access or error, passes through studyplatform.logging's filter,
which masks participant tokens in ``/p/<token>/`` paths. Command-line flags (--bind,
--workers) override what is set here.
"""

from __future__ import annotations

import os

from gunicorn.config import Config
from gunicorn.glogging import Logger

# "-" is standard output (containers' log collector); a path writes a file; "" turns it off.
accesslog = os.environ.get("GUNICORN_ACCESS_LOG", "-") or None
# Address, time, request line with the path only (%(U)s, not %(r)s), status, bytes,
# duration in ms, user agent. No %(q)s, %(r)s or %(f)s: they carry query strings.
access_log_format = '%(h)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s %(M)sms "%(a)s"'
errorlog = os.environ.get("GUNICORN_ERROR_LOG", "-")
loglevel = os.environ.get("GUNICORN_LOG_LEVEL", "info")
workers = int(os.environ.get("GUNICORN_WORKERS", "3"))
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "60"))


class RedactingLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger, with studyplatform.logging.RedactPersonalData on its two loggers."""

    def setup(self, cfg: Config) -> None:
        super().setup(cfg)
        from studyplatform.logging import RedactPersonalData

        for log in (self.error_log, self.access_log):
            if not any(isinstance(f, RedactPersonalData) for f in log.filters):
                log.addFilter(RedactPersonalData())


logger_class = RedactingLogger
