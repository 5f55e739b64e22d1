"""Logs never contain panel ids or participant tokens: gunicorn's access and error logs and
Django's request log, from a real gunicorn serving real requests."""

from __future__ import annotations

import logging
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from studyplatform.logging import RedactPersonalData, redact
from tests.factories import StudyFactory
from tests.generation.subprocesses import ROOT, child_env, free_port, stop, wait_until

GUNICORN = str(ROOT / ".venv" / "bin" / "gunicorn")
PANEL_ID = "secret123"


def fetch(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def serving(url: str) -> bool:
    try:
        return fetch(url) == 200
    except urllib.error.URLError:
        return False


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_gunicorn_and_django_logs_carry_no_panel_id_and_no_token(tmp_path: Path):
    study = StudyFactory.create_live()
    token = uuid.uuid4()
    port = free_port()
    access, errors = tmp_path / "access.log", tmp_path / "error.log"
    output = (tmp_path / "output.log").open("wb")
    server = subprocess.Popen(
        [GUNICORN, "-c", "studyplatform/gunicorn.conf.py", "studyplatform.wsgi:application",
         "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        cwd=ROOT,
        env=child_env(
            GUNICORN_ACCESS_LOG=str(access),
            GUNICORN_ERROR_LOG=str(errors),
            DJANGO_LOG_LEVEL="INFO",
        ),
        stdout=output,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(
            lambda: serving(f"{base}/about/"),
            timeout=60,
            what="gunicorn to serve",
            processes=(server,),
        )
        assert fetch(f"{base}/s/{study.slug}/?PROLIFIC_PID={PANEL_ID}&STUDY_ID=s1") == 200
        assert fetch(f"{base}/p/{token}/instructions/?workerId={PANEL_ID}") == 404
        assert fetch(f"{base}/s/no-such-study/?PROLIFIC_PID={PANEL_ID}") == 404
    finally:
        stop(server)
        output.close()
    logs = {p.name: p.read_text() for p in (access, errors, tmp_path / "output.log")}
    everything = "\n".join(logs.values())
    # The requests were logged...
    assert f'"GET /s/{study.slug}/ HTTP/1.1" 200' in logs["access.log"]
    assert '"GET /p/<token>/instructions/ HTTP/1.1" 404' in logs["access.log"]
    # ...Django's own 404 warning too (DJANGO_LOG_LEVEL=INFO), without the token.
    assert "Not Found: /p/<token>/instructions/" in everything
    # ...but never who made them.
    assert PANEL_ID not in everything
    assert str(token) not in everything
    assert token.hex not in everything


def test_redact_masks_tokens_queries_panel_ids_and_api_tokens():
    token = "4f1b2c3d-1111-4222-8333-944455556666"
    line = (
        f'127.0.0.1 - - [03/Dec/2026:09:00:00 +0000] "GET /p/{token}/article/1/?x=1 HTTP/1.1"'
        f' 200 512 "https://site/s/demo/?PROLIFIC_PID=abc&SESSION_ID=q" "Mozilla"'
    )
    masked = redact(line)
    assert token not in masked
    assert "abc" not in masked
    assert "SESSION_ID=q" not in masked
    assert "/p/<token>/article/1/?<query>" in masked
    assert redact("posted PROLIFIC_PID=P-77 and workerId: W9") == (
        "posted PROLIFIC_PID=<redacted> and workerId: <redacted>"
    )
    assert redact("Authorization: Token " + "ab" * 20) == "Authorization: Token <api-token>"
    # Ordinary messages are left alone.
    assert redact("Is the database up? Yes.") == "Is the database up? Yes."


def test_the_filter_rewrites_messages_arguments_and_tracebacks():
    token = uuid.uuid4()
    record = logging.LogRecord(
        "django.request", logging.WARNING, __file__, 1, "Not Found: %s", (f"/p/{token}/",), None
    )
    try:
        raise ValueError(f"bad answer for /p/{token}/ PROLIFIC_PID=secret")
    except ValueError:
        import sys

        record.exc_info = sys.exc_info()
    assert RedactPersonalData().filter(record) is True
    formatted = logging.Formatter().format(record)
    assert str(token) not in formatted
    assert "secret" not in formatted
    assert "Not Found: /p/<token>/" in formatted


def test_every_django_log_handler_redacts():
    from django.conf import settings

    for name, handler in settings.LOGGING["handlers"].items():
        assert "redact" in handler.get("filters", []), name
