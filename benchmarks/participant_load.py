"""Benchmark: launch-day load on the participant pages, against gunicorn on PostgreSQL.

Builds everything it measures, on loopback only, and removes it at the end:

1. a throwaway PostgreSQL cluster of its own (initdb + pg_ctl, as scripts/with-postgres.sh
   does; its own so that ``--fault restart-db`` can restart it), migrated, with a live
   two-condition study (Kreps et al. questions, a comprehension page, an attention check
   among the articles, the demographics page);
2. one or more gunicorn instances (``--servers``, ``--workers`` sync workers each) with
   production settings (``DJANGO_DEBUG=false``, collected static files), each on a
   loopback socket bound to port 0 and handed to gunicorn as ``fd://``;
3. ``--participants`` simulated participants, ``--concurrency`` at a time, through the
   real pages: the study link with ``?PROLIFIC_PID=``, consent (POST with the CSRF token),
   instructions, comprehension, every article and its questions, the attention check,
   about you, finish, debrief. Think times between steps, and a share of refreshes,
   back buttons (and re-answering the earlier page) and double submits (two identical
   POSTs at once). A connection error, 502 or 503 is retried as a participant would
   reload the page.

It prints the CPU, participants per minute, requests per second, p50/p95/p99 latency per
page, errors, the server CPU per request (gunicorn and PostgreSQL process trees, from
/proc, children included) for the participant pages against a bare 404 page of the same
stack measured in the same run (the baseline, and the ratio), the queries per page (one
participant through Django's test client with CaptureQueriesContext, against the same
database), and, from SQL afterwards: answers lost (accepted by a redirect but not stored
as sent), answers duplicated, half-written rows, condition and article balance.

``--fault kill-worker`` SIGKILLs a gunicorn worker, ``--fault restart-db`` restarts
PostgreSQL (``pg_ctl restart -m fast``), once ``--fault-at`` of the expected steps are
done. ``--servers 2 --race-entry`` sends every panel id's consent to both servers at once.
``--json PATH`` writes the report for tests (tests/reliability/).

Usage (the numbers in the notes):

    .venv/bin/python benchmarks/participant_load.py --participants 120 --concurrency 8
    .venv/bin/python benchmarks/participant_load.py --quick        # smoke test, seconds
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

HOST = "127.0.0.1"  # the only address this script ever sends traffic to
SLUG = "launch-day"
ARTICLES_PER_CONDITION = 6
ARTICLES_PER_PARTICIPANT = 3
# Rate limits keyed by client IP would throttle a load test from one address: generous
# values through the settings' environment variables (ignored where they do not exist).
GENEROUS_RATES = {"CREDENCE_ENTRY_RATE": "1000000/m", "CREDENCE_POST_RATE": "1000000/m"}
RETRYABLE = (0, 502, 503)  # no answer (connection reset), proxy error, "please retry"


# ---------------------------------------------------------------------------------------
# Processes: PostgreSQL, gunicorn, CPU time from /proc


def _proc_stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and its reaped children), or None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2 :].split()
    # state ppid ... utime(14) stime(15) cutime(16) cstime(17), 1-based in proc(5).
    ticks = sum(int(f) for f in fields[11:15])
    return int(fields[1]), ticks / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root_pid: int) -> float:
    """CPU seconds of a process and all its descendants, live or exited (an exited,
    reaped child's time is in its parent's cutime/cstime: a PostgreSQL backend of a
    closed connection, a killed gunicorn worker)."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None:
                parents[int(entry.name)], cpu[int(entry.name)] = stat
    total, frontier = 0.0, [root_pid]
    while frontier:
        pid = frontier.pop()
        total += cpu.get(pid, 0.0)
        frontier.extend(child for child, parent in parents.items() if parent == pid)
    return total


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            stat = _proc_stat(int(entry.name))
            if stat is not None and stat[0] == pid:
                found.append(int(entry.name))
    return sorted(found)


def _busy_worker(server: Gunicorn) -> int:
    """A worker that is running (state R) right now, so that the kill is likely to cut a
    request short; the first worker when none is seen running within half a second."""
    workers = server.workers()
    for _ in range(50):
        for pid in workers:
            with contextlib.suppress(OSError):
                raw = Path(f"/proc/{pid}/stat").read_text()
                if raw[raw.rindex(")") + 2] == "R":
                    return pid
        time.sleep(0.01)
    return workers[0]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


INITDB_OPTIONS = ["-U", "credence", "--auth=trust", "-E", "UTF8"]


class PostgresCluster:
    """A throwaway cluster in ``folder`` (as scripts/with-postgres.sh makes one), run as
    the postgres user when this runs as root (initdb refuses root)."""

    def __init__(self, folder: Path) -> None:
        bins = sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))
        if not bins or not (bins[-1] / "initdb").exists():
            raise SystemExit("PostgreSQL server binaries not found (apt-get install postgresql).")
        self.bin = bins[-1]
        self.folder = folder
        self.data = folder / "data"
        self.port = _free_port()
        self.as_pg: list[str] = []
        if os.getuid() == 0:
            shutil.chown(folder, "postgres")
            runuser = shutil.which("runuser") or "/usr/sbin/runuser"
            self.as_pg = [runuser, "-u", "postgres", "--"]

    def url(self, database: str = "postgres") -> str:
        return f"postgres://credence@{HOST}:{self.port}/{database}"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            [*self.as_pg, str(self.bin / "pg_ctl"), "-D", str(self.data), *args],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def start(self) -> None:
        subprocess.run(
            [*self.as_pg, str(self.bin / "initdb"), "-D", str(self.data), *INITDB_OPTIONS],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        # fsync off: nothing here survives an OS crash, only a server crash, and the kernel
        # keeps what was written. synchronous_commit stays on (unlike with-postgres.sh):
        # with it off, an immediate restart drops commits the server had acknowledged,
        # and the restart-db fault would count them as answers the app lost.
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses={HOST} -c fsync=off "
            "-c synchronous_commit=on -c full_page_writes=off -c max_connections=200"
        )
        self._ctl("-l", str(self.folder / "server.log"), "-w", "-o", options, "start")

    def restart(self, mode: str = "fast") -> float:
        """Restart the server (pg_ctl keeps the start options); returns the seconds taken."""
        started = time.perf_counter()
        self._ctl("-m", mode, "-w", "restart")
        return time.perf_counter() - started

    def stop(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._ctl("-m", "immediate", "stop")

    def postmaster_pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])


class Gunicorn:
    """gunicorn on a loopback socket bound to port 0 here and inherited as fd:// (no
    race for a "free" port)."""

    def __init__(self, *, env: Mapping[str, str], workers: int, log: Path) -> None:
        self.sock = socket.socket()
        self.sock.bind((HOST, 0))
        self.sock.listen(256)
        self.port = int(self.sock.getsockname()[1])
        fd = self.sock.fileno()
        self.log = log
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [
                    str(ROOT / ".venv" / "bin" / "gunicorn"),
                    "studyplatform.wsgi:application",
                    *("--bind", f"fd://{fd}", "--workers", str(workers), "--timeout", "30"),
                    *("--graceful-timeout", "5"),
                ],
                cwd=ROOT,
                env=dict(env),
                pass_fds=[fd],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"gunicorn exited; see {self.log}")
            reply = Browser(self.port, timeout=5.0).request("GET", "/ready-probe-404/")
            if reply.status == 404:
                return
            time.sleep(0.2)
        raise SystemExit(f"gunicorn did not answer within {timeout:.0f} s; see {self.log}")

    def workers(self) -> list[int]:
        return children_of(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.sock.close()


# ---------------------------------------------------------------------------------------
# A browser: one participant's cookies, one connection per request (sync workers close
# every connection anyway), redirects followed by the caller so each is timed.


@dataclass
class Reply:
    status: int  # 0: no HTTP answer (connection reset or refused, timeout)
    location: str
    body: str
    seconds: float
    error: str = ""


class Browser:
    def __init__(self, port: int, *, timeout: float = 30.0) -> None:
        self.port = port
        self.timeout = timeout
        self.cookies: dict[str, str] = {}
        self.lock = threading.Lock()

    def request(self, method: str, path: str, form: Mapping[str, Any] | None = None) -> Reply:
        base = f"https://{HOST}:{self.port}"
        headers = {
            "User-Agent": "credence-load/1.0",
            # As behind the TLS proxy of a deployment: settings that trust the proxy's
            # header then see HTTPS (no redirect to https://), and Django's CSRF check of
            # HTTPS posts finds a same-origin Referer.
            "X-Forwarded-Proto": "https",
            "Referer": base + path,
        }
        with self.lock:
            if self.cookies:
                headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form, doseq=True).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        started = time.perf_counter()
        connection = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            text = response.read().decode("utf-8", "replace")
        except (OSError, http.client.HTTPException) as error:
            return Reply(0, "", "", time.perf_counter() - started, type(error).__name__)
        finally:
            connection.close()
        seconds = time.perf_counter() - started
        with self.lock:
            for header in response.headers.get_all("Set-Cookie") or []:
                for name, morsel in SimpleCookie(header).items():
                    if morsel["max-age"] == "0" or not morsel.value:
                        self.cookies.pop(name, None)
                    else:
                        self.cookies[name] = morsel.value
        location = urllib.parse.urlsplit(response.headers.get("Location", "")).path
        return Reply(response.status, location, text, seconds)


# ---------------------------------------------------------------------------------------
# Bookkeeping of a run


PAGE_KINDS = [
    (re.compile(r"^/s/[^/]+/$"), "consent"),
    (re.compile(r"^/p/[^/]+/$"), "resume"),
    (re.compile(r"^/p/[^/]+/instructions/$"), "instructions"),
    (re.compile(r"^/p/[^/]+/comprehension/$"), "comprehension"),
    (re.compile(r"^/p/[^/]+/article/\d+/$"), "article"),
    (re.compile(r"^/p/[^/]+/check/(\d+/)?$"), "check"),
    (re.compile(r"^/p/[^/]+/about-you/$"), "about-you"),
    (re.compile(r"^/p/[^/]+/finish/$"), "finish"),
    (re.compile(r"^/p/[^/]+/debrief/$"), "debrief"),
]


def page_kind(path: str) -> str:
    path = urllib.parse.urlsplit(path).path
    return next((kind for pattern, kind in PAGE_KINDS if pattern.match(path)), "other")


@dataclass
class Tally:
    """Everything the load generator saw, shared by its threads (under ``lock``)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    requests: int = 0
    retried: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    errors: list[str] = field(default_factory=list)
    stack_traces: int = 0
    impolite_5xx: int = 0
    completed: int = 0
    steps: int = 0  # accepted POSTs (answered by a redirect)
    # (pid, "trial", position) or (pid, "once", 0) -> {question key: value sent}, for
    # every POST that the server accepted with a redirect.
    accepted: dict[tuple[str, str, int], dict[str, Any]] = field(default_factory=dict)
    race_mismatches: int = 0
    # Participants whose session cookie, taken to another server, did not lead back to
    # their participation (sessions must live in the database, not in one process).
    session_mismatches: int = 0
    per_port: dict[int, int] = field(default_factory=lambda: defaultdict(int))

    def note(self, method: str, path: str, reply: Reply) -> None:
        with self.lock:
            self.requests += 1
            if reply.status not in RETRYABLE:
                self.latencies[f"{method} {page_kind(path)}"].append(reply.seconds)
            if "Traceback" in reply.body:
                self.stack_traces += 1
            if reply.status >= 500 and not (
                reply.status == 503 and 'data-step="retry"' in reply.body
            ):
                self.impolite_5xx += 1
            if reply.status in RETRYABLE:
                label = {0: f"no answer ({reply.error})", 502: "502", 503: "503 please retry"}
                self.retried[label[reply.status]] += 1

    def error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)


class Stop(Exception):
    """The run's time is up, or the participant cannot go on."""


@dataclass
class Behaviour:
    think_ms: float = 50.0
    refresh: float = 0.05
    back: float = 0.05
    double_submit: float = 0.05
    retries: int = 40  # a participant reloading every 0.25 s for ten seconds
    deadline: float = float("inf")  # time.monotonic() after which nobody goes on


def _fetch(
    browser: Browser, tally: Tally, behaviour: Behaviour, method: str, path: str, form: Any = None
) -> Reply:
    """One request, repeated as a participant would reload while the site answers
    'please retry' (503), a proxy error (502) or nothing at all."""
    for attempt in range(behaviour.retries + 1):
        if time.monotonic() > behaviour.deadline:
            raise Stop("time is up")
        reply = browser.request(method, path, form)
        tally.note(method, path, reply)
        with tally.lock:
            tally.per_port[browser.port] += 1
        if reply.status not in RETRYABLE:
            return reply
        time.sleep(min(0.05 * (attempt + 1), 0.25))
    raise Stop(f"{method} {page_kind(path)}: still {reply.status or reply.error} after retries")


def _answer(
    page: Any, form: Any, expected: Mapping[str, str], rng: random.Random
) -> dict[str, Any]:
    """What a participant sends: consent, expected answers to checks and comprehension,
    any offered answer elsewhere (the hidden fields, CSRF token included, as they are)."""
    data: dict[str, Any] = dict(form.hidden())
    if page.step == "consent":
        data["consent"] = "yes"
    for name, values in form.options().items():
        data[name] = expected.get(name) if name in expected else rng.choice(values)
    for name, (low, high) in form.numbers.items():
        data[name] = str(rng.randint(low, high))
    for name, values in form.checkboxes().items():
        data[name] = rng.sample(values, rng.randint(1, len(values)))
    for name in form.textareas:
        data[name] = "Load test answer."
    return data


def _record_accepted(tally: Tally, pid: str, page: Any, data: Mapping[str, Any]) -> None:
    # The page's hidden counters (surveys.fraud's credence_* fields) are no answers.
    answers = {
        k: v
        for k, v in data.items()
        if k not in ("csrfmiddlewaretoken", "visible_ms") and not k.startswith("credence_")
    }
    answers.pop("tab_aways", None)
    answers.pop("attempt", None)
    with tally.lock:
        tally.steps += 1
        if not answers or page.step in ("consent", "instructions", "finish"):
            return
        key = (pid, "trial", page.position or 0) if page.step == "article" else (pid, "once", 0)
        tally.accepted.setdefault(key, {}).update(answers)


def _submit_again(
    browser: Browser,
    tally: Tally,
    behaviour: Behaviour,
    action: str,
    data: Mapping[str, Any],
    out: list[Reply],
) -> None:
    """The second POST of a double submit (a double click), sent alongside the first."""
    with contextlib.suppress(Stop):
        out.append(_fetch(browser, tally, behaviour, "POST", action, data))


def _enter_elsewhere(
    browser: Browser,
    tally: Tally,
    behaviour: Behaviour,
    path: str,
    expected: Mapping[str, str],
    out: list[Reply],
) -> None:
    """The same panel id opening the study link and consenting on another server."""
    from surveys.simulation import Page

    with contextlib.suppress(Stop):
        first = _fetch(browser, tally, behaviour, "GET", path)
        if first.status == 302:  # enrolled already: sent on to the participation
            out.append(first)
            return
        page = Page.parse(first.status, path, first.body)
        posts = [f for f in page.forms if f.method.lower() == "post"]
        if first.status == 200 and posts:
            data = _answer(page, posts[0], expected, random.Random(path))
            out.append(_fetch(browser, tally, behaviour, "POST", posts[0].action, data))


def _leads_back(cookies: Mapping[str, str], port: int, tally: Tally, behaviour: Behaviour) -> bool:
    browser = Browser(port)
    browser.cookies = dict(cookies)
    reply = _fetch(browser, tally, behaviour, "GET", f"/s/{SLUG}/")
    for _ in range(2):  # the study link -> /p/<token>/ -> the debrief
        if reply.status == 302:
            reply = _fetch(browser, tally, behaviour, "GET", reply.location)
    return reply.status == 200 and 'data-step="debrief"' in reply.body


def _come_back_elsewhere(
    browser: Browser, other: Browser, tally: Tally, behaviour: Behaviour
) -> None:
    """The study link without a panel id, with one browser's cookies, on the other
    server: the session (in the database) leads back to the same participation. Of the
    two browsers that raced to consent, the one whose request enrolled (or lost the
    insert race) remembers the participation in its session; the other was sent on by
    its panel id alone, which the session does not record. So one of the two must."""
    with browser.lock, other.lock:
        mine, theirs = dict(browser.cookies), dict(other.cookies)
    if not (
        _leads_back(mine, other.port, tally, behaviour)
        or _leads_back(theirs, browser.port, tally, behaviour)
    ):
        with tally.lock:
            tally.session_mismatches += 1


# Complexity kept: a participant's walk through the pages with refresh, back and double submit, read
# as one story.
def participant_run(  # noqa: C901
    browsers: list[Browser],
    *,
    pid: str,
    expected: Mapping[str, str],
    tally: Tally,
    behaviour: Behaviour,
    rng: random.Random,
    race_entry: bool = False,
) -> None:
    """One participant from the study link to the debrief. ``browsers[0]`` is theirs; with
    ``race_entry`` the consent is also sent through ``browsers[1]`` (another server) at
    the same moment, as from a second tab routed elsewhere by a load balancer."""
    from surveys.simulation import Page

    browser = browsers[0]
    query = urllib.parse.urlencode({"PROLIFIC_PID": pid, "STUDY_ID": "LOAD", "SESSION_ID": pid})
    path = f"/s/{SLUG}/?{query}"
    reply = _fetch(browser, tally, behaviour, "GET", path)
    history: list[str] = []
    for _ in range(60):
        if reply.status != 200:
            raise Stop(f"GET {page_kind(path)}: HTTP {reply.status}")
        page = Page.parse(reply.status, path, reply.body)
        if page.step == "debrief":
            if not page.completion_code:
                raise Stop("debrief without a completion code")
            with tally.lock:
                tally.completed += 1
            if len(browsers) > 1:
                _come_back_elsewhere(browser, browsers[1], tally, behaviour)
            return
        forms = [f for f in page.forms if f.method.lower() == "post"]
        if not forms:
            raise Stop(f"no form on the {page.step or 'unknown'} page")
        form = forms[0]
        time.sleep(rng.expovariate(1000.0 / behaviour.think_ms) if behaviour.think_ms else 0)
        if rng.random() < behaviour.refresh:
            _fetch(browser, tally, behaviour, "GET", path)
        if history and rng.random() < behaviour.back:
            # Back to the page before and forward again; an earlier article is answered
            # anew (allowed: the answer is updated, never added).
            back = _fetch(browser, tally, behaviour, "GET", history[-1])
            earlier = Page.parse(back.status, history[-1], back.body)
            posts = [f for f in earlier.forms if f.method.lower() == "post"]
            if back.status == 200 and earlier.step == "article" and posts:
                data = _answer(earlier, posts[0], expected, rng)
                again = _fetch(browser, tally, behaviour, "POST", posts[0].action, data)
                if again.status == 302:
                    _record_accepted(tally, pid, earlier, data)
            reply = _fetch(browser, tally, behaviour, "GET", path)
            page = Page.parse(reply.status, path, reply.body)
            forms = [f for f in page.forms if f.method.lower() == "post"]
            if reply.status != 200 or not forms:
                raise Stop(f"coming back to {page_kind(path)}: HTTP {reply.status}")
            form = forms[0]
        data = _answer(page, form, expected, rng)
        twin: list[Reply] = []
        threads = []
        racing = page.step == "consent" and race_entry and len(browsers) > 1
        if racing:
            threads.append(
                threading.Thread(
                    target=_enter_elsewhere,
                    args=(browsers[1], tally, behaviour, path, expected, twin),
                )
            )
        elif rng.random() < behaviour.double_submit:
            threads.append(
                threading.Thread(
                    target=_submit_again, args=(browser, tally, behaviour, form.action, data, twin)
                )
            )
        for thread in threads:
            thread.start()
        reply = _fetch(browser, tally, behaviour, "POST", form.action, data)
        for thread in threads:
            thread.join()
        if reply.status != 302:
            raise Stop(f"POST {page.step}: HTTP {reply.status}, not a redirect")
        if racing and (not twin or twin[0].location != reply.location):
            with tally.lock:
                tally.race_mismatches += 1
        _record_accepted(tally, pid, page, data)
        history.append(path)
        path = reply.location
        reply = _fetch(browser, tally, behaviour, "GET", path)
        while reply.status == 302:  # /p/<token>/ leads on to the participant's step
            path = reply.location
            reply = _fetch(browser, tally, behaviour, "GET", path)
    raise Stop("more than 60 pages")


def run_load(
    *,
    ports: list[int],
    participants: int,
    concurrency: int,
    expected: Mapping[str, str],
    behaviour: Behaviour,
    seed: int,
    pid_prefix: str,
    race_entry: bool = False,
    tally: Tally | None = None,
) -> tuple[Tally, float]:
    """``participants`` participants, ``concurrency`` at a time, the i-th on server
    i mod len(ports). Returns the tally (``tally`` when given) and the wall time."""
    tally = tally if tally is not None else Tally()
    queue = list(range(participants))
    queue_lock = threading.Lock()

    def worker() -> None:
        while True:
            with queue_lock:
                if not queue or time.monotonic() > behaviour.deadline:
                    return
                i = queue.pop(0)
            port = ports[i % len(ports)]
            browsers = [Browser(port)]
            if race_entry and len(ports) > 1:
                browsers.append(Browser(ports[(i + 1) % len(ports)]))
            pid = f"{pid_prefix}-{i}"
            try:
                participant_run(
                    browsers,
                    pid=pid,
                    expected=expected,
                    tally=tally,
                    behaviour=behaviour,
                    rng=random.Random(f"{seed}:{i}"),
                    race_entry=race_entry,
                )
            except Stop as stop:
                tally.error(f"{pid}: {stop}")

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return tally, time.perf_counter() - started


def run_baseline(
    *, port: int, requests: int, concurrency: int, path: str = "/no-such-page/"
) -> tuple[int, float]:
    """A 404 page of the same stack, by default the bare one (no database query):
    (answers that were 404, wall seconds)."""
    count = iter(range(requests))
    lock = threading.Lock()
    ok = [0]

    def worker() -> None:
        browser = Browser(port)
        while True:
            with lock:
                if next(count, None) is None:
                    return
            if browser.request("GET", path).status == 404:
                with lock:
                    ok[0] += 1

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return ok[0], time.perf_counter() - started


# ---------------------------------------------------------------------------------------
# Django side: the study, queries per page, the SQL checks


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _django_setup(env: Mapping[str, str]) -> None:
    os.environ.update(env)
    os.environ["DJANGO_ALLOWED_HOSTS"] = f"{HOST},localhost,testserver"
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.test.utils import override_settings

    call_command("migrate", verbosity=0)
    # The servers need the manifest of hashed names ({% static %} in DEBUG=false); the
    # production storage also compresses every file (minutes on a busy 2-core box) for
    # files that this benchmark never fetches. Same manifest, without compression.
    manifest_only = {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"}
    with override_settings(STORAGES={**settings.STORAGES, "staticfiles": manifest_only}):
        call_command("collectstatic", "--noinput", verbosity=0)


def study_create() -> dict[str, str]:
    """The live study; returns the expected answers of its checks, by question key."""
    from surveys.instruments import instrument_apply
    from surveys.models import Article, Condition, Question, Study, Team
    from surveys.services import study_set_status

    team, _ = Team.objects.get_or_create(name="Load test")
    study = Study.objects.create(
        slug=SLUG,
        title="How credible is this news? (load test)",
        team=team,
        articles_per_participant=ARTICLES_PER_PARTICIPANT,
        seed=2019,
        completion_url="https://app.prolific.com/submissions/complete?cc={code}",
    )
    paragraph = (
        "The city council approved the budget on Monday after a long debate. Officials said "
        "the plan funds schools, roads and the new library, while critics called it too "
        "small for a growing town and asked for a second vote next spring. "
    )
    real = Condition.objects.create(study=study, name="real", label="Real", is_reference=True)
    generated = Condition.objects.create(study=study, name="generated", label="Generated")
    for i in range(ARTICLES_PER_CONDITION):
        body = "\n\n".join(f"{paragraph}(Story {i}, paragraph {p}.)" for p in range(6))
        source = Article.objects.create(
            origin=Article.Origin.REAL,
            title=f"Council approves budget for year {2000 + i}",
            body=body,
            outlet="Wikinews",
            url=f"https://en.wikinews.org/wiki/Load_{i}",
            license="CC-BY-2.5",
        )
        real.articles.add(source)
        generated.articles.add(
            Article.objects.create(
                origin=Article.Origin.GENERATED,
                title=f"Council approves budget for year {2000 + i}",
                body=body.replace("Monday", "Tuesday"),
                source_article=source,
                model_name="load-test-model",
            )
        )
    for name in ("comprehension", "kreps", "attention", "demographics"):
        instrument_apply(study=study, name=name)
    study_set_status(study=study, status=Study.Status.LIVE)
    return dict(
        study.questions.filter(
            scope__in=[Question.Scope.ATTENTION_CHECK, Question.Scope.COMPREHENSION]
        ).values_list("key", "expected_answer")
    )


class _TestClientBrowser(Browser):
    """The same participant through Django's test client (in this process, against the
    same database), counting each request's queries and their SQL time."""

    def __init__(self) -> None:
        from django.test import Client

        super().__init__(0)
        self.client = Client(enforce_csrf_checks=True)
        self.queries: dict[str, list[tuple[int, float, float]]] = defaultdict(list)

    def request(self, method: str, path: str, form: Mapping[str, Any] | None = None) -> Reply:
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        headers = {"referer": "https://testserver" + path, "user-agent": "credence-load/1.0"}
        started = time.perf_counter()
        with CaptureQueriesContext(connection) as captured:
            if method == "GET":
                response = self.client.get(path, secure=True, headers=headers)
            else:
                response = self.client.post(path, dict(form or {}), secure=True, headers=headers)
        seconds = time.perf_counter() - started
        sql = sum(float(q["time"]) for q in captured.captured_queries)
        self.queries[f"{method} {page_kind(path)}"].append((len(captured), sql, seconds))
        location = urllib.parse.urlsplit(response.headers.get("Location", "")).path
        return Reply(response.status_code, location, response.content.decode(), seconds)


def queries_per_page(expected: Mapping[str, str]) -> dict[str, tuple[float, float, float]]:
    """Mean (queries, SQL ms, in-process ms) per page kind, over one participant (after
    another one that warms up imports and templates)."""
    behaviour = Behaviour(think_ms=0, refresh=0, back=0, double_submit=0)
    for pid in ("QUERIES-WARMUP", "QUERIES-0"):
        browser = _TestClientBrowser()
        participant_run(
            [browser],
            pid=pid,
            expected=expected,
            tally=Tally(),
            behaviour=behaviour,
            rng=random.Random(0),
        )
    return {
        kind: (
            statistics.mean(q for q, _, _ in rows),
            1000 * statistics.mean(s for _, s, _ in rows),
            1000 * statistics.mean(t for _, _, t in rows),
        )
        for kind, rows in sorted(browser.queries.items())
    }


def sql_checks(tally: Tally, pid_prefix: str) -> dict[str, Any]:
    """What the database holds, against what the server accepted."""
    from django.db import connection
    from django.db.models import Count, Q

    from surveys.models import Participant, Question, Response, Study, Trial

    study = Study.objects.get(slug=SLUG)
    ours = Participant.objects.filter(study=study, panel_pid__startswith=pid_prefix + "-")
    responses = {
        (pid, "trial" if position is not None else "once", position or 0, key): value
        for pid, position, key, value in Response.objects.filter(participant__in=ours).values_list(
            "participant__panel_pid", "trial__position", "question__key", "value"
        )
    }
    lost = 0
    for (pid, kind, position), answers in tally.accepted.items():
        for key, sent in answers.items():
            stored = responses.get((pid, kind, position, key))
            if isinstance(sent, list):
                matches = stored is not None and sorted(json.loads(stored)) == sorted(sent)
            else:
                matches = stored == str(sent).strip()
            lost += not matches
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM (SELECT 1 FROM surveys_response GROUP BY participant_id, "
            "trial_id, question_id HAVING count(*) > 1) d"
        )
        duplicated = cursor.fetchone()[0]
        cursor.execute(
            "SELECT count(*) FROM (SELECT 1 FROM surveys_participant WHERE panel_pid <> '' "
            "GROUP BY study_id, panel_pid HAVING count(*) > 1) d"
        )
        panel_ids_twice = cursor.fetchone()[0]
        cursor.execute("SHOW synchronous_commit")
        synchronous_commit = cursor.fetchone()[0]
    per_article = study.questions.filter(scope=Question.Scope.PER_ARTICLE, required=True).count()
    trials = Trial.objects.filter(participant__study=study).annotate(
        n=Count("responses", filter=Q(responses__question__required=True))
    )
    half_written = {
        "participants without all their trials": Participant.objects.filter(study=study)
        .exclude(status=Participant.Status.WITHDRAWN)
        .annotate(n=Count("trials"))
        .exclude(n=study.articles_per_participant)
        .count(),
        "answered trials missing answers": trials.filter(answered_at__isnull=False)
        .exclude(n=per_article)
        .count(),
        "answers on trials never answered": trials.filter(
            answered_at__isnull=True, n__gt=0
        ).count(),
        "completed without every answer": trials.filter(
            participant__status=Participant.Status.COMPLETED
        )
        .exclude(n=per_article)
        .count(),
    }
    real = Participant.objects.filter(study=study, is_test=False).exclude(
        status=Participant.Status.WITHDRAWN
    )
    conditions = dict(
        real.values("condition__name").annotate(n=Count("pk")).values_list("condition__name", "n")
    )
    exposure: dict[str, list[int]] = defaultdict(list)
    for condition in study.conditions.order_by("name"):
        counts = dict(
            Trial.objects.filter(participant__in=real, condition=condition)
            .values("article_id")
            .annotate(n=Count("pk"))
            .values_list("article_id", "n")
        )
        exposure[condition.name] = sorted(
            counts.get(a, 0) for a in condition.articles.all().values_list("pk", flat=True)
        )
    return {
        "participants": ours.count(),
        "completed": ours.filter(status=Participant.Status.COMPLETED).count(),
        "answers_accepted": sum(len(a) for a in tally.accepted.values()),
        "answers_lost": lost,
        # With it off, a crash loses acknowledged commits: no fault test would mean a thing.
        "synchronous_commit": synchronous_commit,
        "answers_duplicated": duplicated,
        "panel_ids_with_two_participations": panel_ids_twice,
        "half_written": half_written,
        "conditions": conditions,
        "article_exposure": dict(exposure),
    }


# ---------------------------------------------------------------------------------------
# The run


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_description() -> dict[str, Any]:
    info = Path("/proc/cpuinfo").read_text()
    model = re.search(r"model name\s*:\s*(.*)", info)
    flags = re.search(r"flags\s*:\s*(.*)", info)
    flag_list = flags.group(1).split() if flags else []
    notable = [f for f in flag_list if re.match(r"(avx|amx|sse4|fma|aes|sha_ni)", f)]
    return {
        "model": model.group(1) if model else platform.processor(),
        "cores": os.cpu_count(),
        "notable_flags": notable,
        "flags": flag_list,
    }


def redis_start(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """A throwaway redis-server listening on a unix socket only (no TCP port), nothing
    persisted; returns the process and the cache URL."""
    sock = folder / "redis.sock"
    process = subprocess.Popen(
        [
            "redis-server",
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not sock.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("redis-server did not start")
        time.sleep(0.05)
    return process, f"unix://{sock}"


# Complexity kept: the benchmark's phases in order (cluster, servers, baselines, load, faults, SQL,
# report).
def main(argv: list[str] | None = None) -> dict[str, Any]:  # noqa: C901
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--participants", type=int, default=120)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers per server")
    parser.add_argument("--servers", type=int, default=1, help="gunicorn instances")
    parser.add_argument("--think-ms", type=float, default=50.0, help="mean think time")
    parser.add_argument("--refresh", type=float, default=0.05)
    parser.add_argument("--back", type=float, default=0.05)
    parser.add_argument("--double-submit", type=float, default=0.05)
    parser.add_argument("--baseline-requests", type=int, default=400)
    parser.add_argument("--max-seconds", type=float, default=600.0, help="stop after this")
    parser.add_argument("--fault", choices=["none", "kill-worker", "restart-db"], default="none")
    parser.add_argument("--fault-at", type=float, default=0.4, help="share of steps done")
    parser.add_argument(
        "--restart-mode",
        choices=["smart", "fast", "immediate"],
        default="fast",
        help="pg_ctl's shutdown mode for --fault restart-db (immediate: as after a crash)",
    )
    parser.add_argument("--race-entry", action="store_true")
    parser.add_argument(
        "--warmup", action=argparse.BooleanOptionalAction, default=True, help="warm workers first"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke test: a handful")
    parser.add_argument(
        "--redis",
        action="store_true",
        help="share the cache (rate-limit counters) through a redis-server on a unix "
        "socket, as production should, instead of the database cache (the fallback)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="write the report here")
    args = parser.parse_args(argv)
    if args.quick:
        args.participants, args.concurrency, args.workers = 4, 2, 2
        args.baseline_requests, args.think_ms, args.warmup = 20, 0.0, False
    if not 1 <= args.participants <= 5000 or not 1 <= args.concurrency <= 64:
        parser.error("participants must be 1-5000 and concurrency 1-64")
    if not 1 <= args.servers <= 4 or not 1 <= args.workers <= 16:
        parser.error("servers must be 1-4 and workers 1-16")

    # SIGTERM (a test's timeout) still removes the cluster and the servers.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    folder = Path(tempfile.mkdtemp(prefix="credence-load-"))
    folder.chmod(0o755)
    pg_folder = folder / "pg"
    pg_folder.mkdir()
    cluster = PostgresCluster(pg_folder)
    servers: list[Gunicorn] = []
    redis: subprocess.Popen[bytes] | None = None
    report: dict[str, Any] = {
        "cpu": cpu_description(),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
    }
    try:
        _say("starting PostgreSQL")
        cluster.start()
        env = {
            **os.environ,
            **GENEROUS_RATES,
            "DATABASE_URL": cluster.url(),
            "DJANGO_SETTINGS_MODULE": "studyplatform.settings",
            "DJANGO_DEBUG": "false",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(40),
            "DJANGO_SECURE_COOKIES": "false",
            # Plain http on loopback: no TLS proxy in front to redirect to.
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "DJANGO_ALLOWED_HOSTS": HOST,
            "CREDENCE_VAR_DIR": str(folder / "var"),
            "OPENBLAS_NUM_THREADS": "1",
        }
        if args.redis:
            _say("starting redis-server")
            redis, env["CREDENCE_CACHE_URL"] = redis_start(folder)
        _say("migrating, collecting static files")
        _django_setup(env)
        expected = study_create()
        _say("starting gunicorn")
        from django.db import connections

        connections.close_all()
        for i in range(args.servers):
            servers.append(Gunicorn(env=env, workers=args.workers, log=folder / f"gunicorn{i}.log"))
        for server in servers:
            server.wait_ready()
        ports = [s.port for s in servers]

        def app_cpu() -> float:
            return sum(tree_cpu_seconds(s.process.pid) for s in servers)

        def server_cpu() -> float:
            cache = tree_cpu_seconds(redis.pid) if redis is not None else 0.0
            return app_cpu() + tree_cpu_seconds(cluster.postmaster_pid()) + cache

        behaviour = Behaviour(
            think_ms=args.think_ms,
            refresh=args.refresh,
            back=args.back,
            double_submit=args.double_submit,
        )
        if args.warmup:
            _say("warming up the workers")
            # Every worker imports and compiles its templates once: not what is measured.
            run_load(
                ports=ports,
                participants=2 * args.workers * args.servers,
                concurrency=args.concurrency,
                expected=expected,
                behaviour=behaviour,
                seed=args.seed,
                pid_prefix="WARMUP",
            )
        _say("baseline: the bare 404 page")
        cpu_before = server_cpu()
        ok, baseline_wall = run_baseline(
            port=ports[0], requests=args.baseline_requests, concurrency=args.concurrency
        )
        baseline_cpu = server_cpu() - cpu_before
        report["baseline"] = {
            "requests": args.baseline_requests,
            "answered_404": ok,
            "requests_per_s": args.baseline_requests / baseline_wall,
            "cpu_ms_per_request": 1000 * baseline_cpu / args.baseline_requests,
        }
        # A second reference, not the named baseline: the 404 of an unknown participation
        # token, i.e. one indexed query on a pooled connection plus the same 404 page.
        cpu_before = server_cpu()
        ok, wall = run_baseline(
            port=ports[0],
            requests=args.baseline_requests,
            concurrency=args.concurrency,
            path="/p/00000000-0000-4000-8000-000000000000/",
        )
        report["one_query_404"] = {
            "requests": args.baseline_requests,
            "answered_404": ok,
            "requests_per_s": args.baseline_requests / wall,
            "cpu_ms_per_request": 1000 * (server_cpu() - cpu_before) / args.baseline_requests,
        }

        expected_steps = args.participants * 9  # about nine accepted POSTs each
        fault: dict[str, Any] = {"kind": args.fault}
        fault_lock = threading.Lock()

        def inject(tally: Tally) -> None:
            with fault_lock:
                if args.fault == "none" or "at_step" in fault:
                    return
                if tally.steps < args.fault_at * expected_steps:
                    return
                fault["at_step"] = tally.steps
            if args.fault == "kill-worker":
                victim = _busy_worker(servers[0])
                os.kill(victim, signal.SIGKILL)
                fault["killed_pid"] = victim
            else:
                fault["restart_seconds"] = cluster.restart(args.restart_mode)
                fault["restart_mode"] = args.restart_mode

        progress_stop = threading.Event()
        tally = Tally()

        def watch() -> None:
            # Faults are injected from here, not from a participant's thread, so that
            # the load goes on while PostgreSQL restarts.
            while not progress_stop.wait(0.05):
                inject(tally)

        _say(f"load: {args.participants} participants, {args.concurrency} at a time")
        load_av_before = os.getloadavg()
        cpu_before, app_before = server_cpu(), app_cpu()
        generator_before = time.process_time()
        behaviour.deadline = time.monotonic() + args.max_seconds
        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            tally, wall = run_load(
                ports=ports,
                participants=args.participants,
                concurrency=args.concurrency,
                expected=expected,
                behaviour=behaviour,
                seed=args.seed,
                pid_prefix="LOAD",
                race_entry=args.race_entry,
                tally=tally,
            )
        finally:
            progress_stop.set()
            watcher.join()
        load_cpu = server_cpu() - cpu_before
        load_app_cpu = app_cpu() - app_before
        generator_cpu = time.process_time() - generator_before
        load_av_after = os.getloadavg()
        if args.fault != "none" and "at_step" not in fault:
            fault["missed"] = "the run ended before the fault was due"
        if args.fault == "kill-worker":
            fault["workers_after"] = len(servers[0].workers())
        # After a fault: the site answers without anyone restarting it.
        fault["next_request_status"] = Browser(ports[0]).request("GET", f"/s/{SLUG}/").status
        report["fault"] = fault
        report["load"] = {
            "participants": args.participants,
            "completed": tally.completed,
            "wall_s": wall,
            "participants_per_minute": 60 * tally.completed / wall,
            "requests": tally.requests,
            "requests_per_s": tally.requests / wall,
            "steps_per_s": tally.steps / wall,
            "cpu_ms_per_request": 1000 * load_cpu / max(tally.requests, 1),
            "gunicorn_cpu_ms_per_request": 1000 * load_app_cpu / max(tally.requests, 1),
            # This process (the simulated browsers) shares the box with the servers.
            "generator_cpu_ms_per_request": 1000 * generator_cpu / max(tally.requests, 1),
            "errors": tally.errors,
            "retried": dict(tally.retried),
            "stack_traces": tally.stack_traces,
            "impolite_5xx": tally.impolite_5xx,
            "race_mismatches": tally.race_mismatches,
            "session_mismatches": tally.session_mismatches,
            "requests_per_server": {str(p): tally.per_port[p] for p in ports},
            "load_average_before": load_av_before,
            "load_average_after": load_av_after,
            "latency_ms": {
                kind: {
                    "n": len(values),
                    "p50": 1000 * _percentile(values, 0.50),
                    "p95": 1000 * _percentile(values, 0.95),
                    "p99": 1000 * _percentile(values, 0.99),
                }
                for kind, values in sorted(tally.latencies.items())
            },
        }
        report["ratio_cpu_to_baseline"] = (
            report["load"]["cpu_ms_per_request"] / report["baseline"]["cpu_ms_per_request"]
            if report["baseline"]["cpu_ms_per_request"]
            else None
        )
        if args.fault == "restart-db":
            # This process's connection died with the restart too.
            connections.close_all()
        _say("queries per page, SQL checks")
        report["queries_per_page"] = queries_per_page(expected)
        report["sql"] = sql_checks(tally, "LOAD")
    finally:
        for server in servers:
            server.stop()
        if redis is not None:
            redis.terminate()
            redis.wait(timeout=10)
        cluster.stop()
        shutil.rmtree(folder, ignore_errors=True)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    return report


def print_report(report: Mapping[str, Any]) -> None:
    cpu, load, base = report["cpu"], report["load"], report["baseline"]
    print(f"CPU: {cpu['model']}, {cpu['cores']} cores; flags: {' '.join(cpu['notable_flags'])}")
    print(
        f"load average before/after: {' '.join(f'{x:.2f}' for x in load['load_average_before'])}"
        f" / {' '.join(f'{x:.2f}' for x in load['load_average_after'])}"
    )
    print(
        f"{load['completed']}/{load['participants']} participants completed in "
        f"{load['wall_s']:.1f} s: {load['participants_per_minute']:.0f} participants/min, "
        f"{load['requests_per_s']:.1f} requests/s, {load['steps_per_s']:.1f} steps/s"
    )
    print(f"{'page':<20} {'n':>6} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    for kind, row in load["latency_ms"].items():
        print(f"{kind:<20} {row['n']:>6} {row['p50']:>8.1f} {row['p95']:>8.1f} {row['p99']:>8.1f}")
    everything = list(load["latency_ms"].values())
    if everything:
        print(f"(all requests: {sum(r['n'] for r in everything)})")
    ratio = report["ratio_cpu_to_baseline"]
    print(
        f"server CPU per request: participant pages {load['cpu_ms_per_request']:.1f} ms, "
        f"bare 404 page {base['cpu_ms_per_request']:.1f} ms (baseline, "
        f"{base['requests_per_s']:.0f} requests/s); ratio {ratio:.2f}x"
        if ratio
        else "server CPU per request: no baseline"
    )
    one = report["one_query_404"]
    print(
        f"  of which gunicorn {load['gunicorn_cpu_ms_per_request']:.1f} ms (load generator "
        f"{load['generator_cpu_ms_per_request']:.1f} ms more); for reference, "
        f"the 404 of an unknown token (one query) {one['cpu_ms_per_request']:.1f} ms"
    )
    print(f"{'queries per page':<20} {'queries':>8} {'SQL ms':>8} {'view ms':>8}")
    for kind, (queries, sql_ms, view_ms) in report["queries_per_page"].items():
        print(f"{kind:<20} {queries:>8.1f} {sql_ms:>8.1f} {view_ms:>8.1f}")
    print(
        f"errors: {len(load['errors'])}; retried: {load['retried'] or 'none'}; "
        f"stack traces: {load['stack_traces']}; other 5xx: {load['impolite_5xx']}"
    )
    for error in load["errors"][:10]:
        print(f"  {error}")
    if report["fault"]["kind"] != "none":
        print(f"fault: {report['fault']}")
    sql = report["sql"]
    print(
        f"SQL: {sql['completed']}/{sql['participants']} completed; answers accepted "
        f"{sql['answers_accepted']}, lost {sql['answers_lost']}, duplicated "
        f"{sql['answers_duplicated']}; panel ids with two participations "
        f"{sql['panel_ids_with_two_participations']}; half-written {sql['half_written']}"
    )
    print(f"conditions: {sql['conditions']}; article exposure: {sql['article_exposure']}")


if __name__ == "__main__":
    main()
