"""Behind the reverse proxy the README recommends (docs/nginx/), with real nginx and
gunicorn: when the app cannot answer (its workers killed, a restart), participants get
the static "please try again" page with a 503 and Retry-After, never a bare 502 or a
stack trace; once gunicorn is back, the same request succeeds; and nginx's access log
carries neither panel ids nor participant tokens."""

from __future__ import annotations

import http.client
import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.staticfiles import finders

ROOT = Path(__file__).resolve().parents[2]
NGINX_DOCS = ROOT / "docs" / "nginx"
RETRY_PAGE = ROOT / "studyplatform" / "static" / "errors" / "retry.html"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

# The benchmark's gunicorn runner (a loopback socket handed over as fd://, no port race).
_spec = importlib.util.spec_from_file_location(
    "participant_load", ROOT / "benchmarks" / "participant_load.py"
)
assert _spec is not None
assert _spec.loader is not None
load = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("participant_load", load)
_spec.loader.exec_module(load)


def _get(port: int, path: str) -> tuple[int, dict[str, str], str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        connection.close()


def _nginx_config(folder: Path, *, port: int, app_port: int) -> Path:
    """The documented snippets, included as credence.conf includes them, on loopback
    without TLS; only the upstream's port is changed."""
    http_conf = folder / "credence-http.conf"
    http_conf.write_text(
        (NGINX_DOCS / "credence-http.conf")
        .read_text()
        .replace("127.0.0.1:8000", f"127.0.0.1:{app_port}")
    )
    shutil.copy(NGINX_DOCS / "credence-server.conf", folder / "credence-server.conf")
    for temp in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (folder / temp).mkdir()
    user = "user root;" if os.geteuid() == 0 else ""  # the files live in root's temp dir
    config = folder / "nginx.conf"
    config.write_text(
        f"""
{user}
daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log;
events {{ worker_connections 64; }}
http {{
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    include {http_conf};
    server {{
        listen 127.0.0.1:{port};
        access_log {folder}/access.log credence;
        set $credence_static {RETRY_PAGE.parent.parent};
        include {folder}/credence-server.conf;
    }}
}}
"""
    )
    return config


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[tuple[int, object, Path]]:
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx is None:
        pytest.skip("needs nginx (apt-get install nginx-light); scripts/run-tests.sh installs it")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "studyplatform.settings",
        # Static files through the finders (no collectstatic for this test).
        "DJANGO_DEBUG": "true",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "CREDENCE_VAR_DIR": str(tmp_path / "var"),
    }
    app = load.Gunicorn(env=env, workers=1, log=tmp_path / "gunicorn.log")
    app.wait_ready()
    port = load._free_port()
    config = _nginx_config(tmp_path, port=port, app_port=app.port)
    proxy = subprocess.Popen(
        [nginx, "-p", str(tmp_path), "-e", str(tmp_path / "error.log"), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                _get(port, "/about/")
                break
            except OSError:
                assert proxy.poll() is None, (tmp_path / "error.log").read_text()
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)
        yield port, app, tmp_path
    finally:
        proxy.send_signal(signal.SIGQUIT)
        try:
            proxy.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proxy.kill()
        app.stop()


def test_the_retry_page_is_a_static_file_collectstatic_publishes() -> None:
    # nginx serves it from STATIC_ROOT/errors/retry.html: the finders must know it.
    assert finders.find("errors/retry.html") == str(RETRY_PAGE)


def test_participants_get_the_retry_page_while_the_app_is_down(
    stack: tuple[int, object, Path],
) -> None:
    port, app, _folder = stack
    assert _get(port, "/about/")[0] == 200
    # Every gunicorn process killed at once, no clean-up: nothing answers on the socket.
    os.killpg(app.process.pid, signal.SIGKILL)  # type: ignore[attr-defined]
    app.process.wait()  # type: ignore[attr-defined]
    app.sock.close()  # type: ignore[attr-defined]
    status, headers, body = _get(port, "/s/some-study/?PROLIFIC_PID=ABSENT")
    assert status == 503
    assert headers["Retry-After"] == "5"
    assert "no-store" in headers["Cache-Control"]
    assert "Please try again in a moment" in body
    assert "Everything you answered" in body
    assert "Bad Gateway" not in body  # nginx's own error page
    assert "Traceback" not in body


def test_the_next_request_succeeds_once_gunicorn_is_back_and_the_log_keeps_no_ids(
    stack: tuple[int, object, Path],
) -> None:
    port, app, folder = stack
    token = uuid.uuid4()
    _get(port, f"/p/{token}/article/1/?x=1")
    _get(port, "/s/some-study/?PROLIFIC_PID=SECRET-PANEL-ID")
    # A worker killed while idle: the master replaces it and the next request is served.
    workers = app.workers()  # type: ignore[attr-defined]
    os.kill(workers[0], signal.SIGKILL)
    deadline = time.monotonic() + 60
    while True:
        status = _get(port, "/about/")[0]
        if status == 200:
            break
        assert status == 503, status  # the retry page meanwhile, never a bare 502
        assert time.monotonic() < deadline, "gunicorn did not replace its worker"
        time.sleep(0.2)
    log = (folder / "access.log").read_text()
    assert "/p/<token>/article/1/" in log
    assert str(token) not in log
    assert "SECRET-PANEL-ID" not in log
    assert "PROLIFIC_PID" not in log
