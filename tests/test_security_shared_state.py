"""Rate-limit counters are shared by every process: two separate Python processes, as two
gunicorn workers or two app servers would, count against one limit, in the database cache
(the default) and in Redis (CREDENCE_CACHE_URL)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.generation.subprocesses import ROOT, child_env, free_port, stop, wait_until

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"

# One process's three requests from one address, through django-ratelimit (as the
# participant views use it), at 5 an hour: prints whether each was limited.
HITS = """
import django, json, sys
django.setup()
from django.test import RequestFactory
from django_ratelimit.core import is_ratelimited
request = RequestFactory().get("/", REMOTE_ADDR="192.0.2.44")
print(json.dumps([
    is_ratelimited(request, group=sys.argv[1], key="ip", rate="5/h", increment=True)
    for _ in range(3)
]))
"""


def three_hits(group: str, **env: str) -> list[bool]:
    result = subprocess.run(
        [sys.executable, "-c", HITS, group],
        cwd=ROOT,
        env={**child_env(**env), "DJANGO_SETTINGS_MODULE": "studyplatform.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return list(json.loads(result.stdout.strip().splitlines()[-1]))


def test_two_processes_count_against_one_limit_in_the_database_cache():
    group = f"shared-{uuid.uuid4()}"
    assert three_hits(group) == [False, False, False]
    # Hits 4, 5 and 6 in another process: the sixth is over the limit of five.
    assert three_hits(group) == [False, False, True]


@pytest.fixture
def redis_url(tmp_path: Path) -> Iterator[str]:
    if not Path(REDIS).exists():
        pytest.fail("redis-server is missing: apt-get install redis-server")
    import redis

    port = free_port()
    log = (tmp_path / "redis.log").open("wb")
    server = subprocess.Popen(
        [REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    client = redis.Redis(host="127.0.0.1", port=port)

    def answers() -> bool:
        try:
            return bool(client.ping())
        except redis.ConnectionError:
            return False

    try:
        wait_until(answers, timeout=30, what="redis-server to answer", processes=(server,))
        yield f"redis://127.0.0.1:{port}/1"
    finally:
        stop(server)
        log.close()


def test_two_processes_count_against_one_limit_in_redis(redis_url):
    group = f"shared-{uuid.uuid4()}"
    assert three_hits(group, CREDENCE_CACHE_URL=redis_url) == [False, False, False]
    assert three_hits(group, CREDENCE_CACHE_URL=redis_url) == [False, False, True]
    # Not in the database: a process using the database cache starts from zero.
    assert three_hits(group) == [False, False, False]
