"""Helpers for tests that start real processes (manage.py, Celery workers, redis-server)
against the test database."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from django.db import connection

from surveys.models import Article
from tests.factories import RealArticleFactory

ROOT = Path(__file__).resolve().parents[2]


def test_database_url() -> str:
    """A DATABASE_URL for the database this test runs against (the test database)."""
    s = connection.settings_dict
    user = quote(s.get("USER") or "", safe="")
    password = quote(s.get("PASSWORD") or "", safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host, port = s.get("HOST") or "127.0.0.1", s.get("PORT") or 5432
    return f"postgres://{credentials}{host}:{port}/{s['NAME']}"


def child_env(**extra: str) -> dict[str, str]:
    env = {**os.environ, "DATABASE_URL": test_database_url(), **extra}
    env.pop("DJANGO_SETTINGS_MODULE", None)  # manage.py / celery set their own
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(
    condition: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    processes: tuple[subprocess.Popen[bytes], ...] = (),
    interval: float = 0.05,
) -> None:
    """Poll ``condition`` until it holds; fail after ``timeout`` seconds or as soon as one
    of ``processes`` exits."""
    deadline = time.monotonic() + timeout
    while not condition():
        for process in processes:
            if process.poll() is not None:
                raise AssertionError(
                    f"{process.args!r} exited ({process.returncode}) before {what}"
                )
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def stop(process: subprocess.Popen[bytes], *, grace: float = 10) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def stories(count: int) -> list[Article]:
    """Short real articles with distinct one-sentence ledes, for runs in other processes."""
    return [
        RealArticleFactory.create(
            body=f"Story {n} began when the council met on Monday to vote on plan {n}."
            "\n\nIt passed."
        )
        for n in range(count)
    ]
