#!/usr/bin/env bash
# The whole test suite on PostgreSQL, with the browser tests in Debian's Chromium.
# Used by `make test` and by CI. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.venv/bin
# The tests run on the development settings: debug mode, which is off by default, brings
# the development key (pytest-django still runs each test with DEBUG off). pytest and mypy
# get it from studyplatform.settings_dev too; manage.py and the processes tests start
# read it here.
export DJANGO_DEBUG="${DJANGO_DEBUG:-true}"
# As studyplatform/__init__.py does, but before any test module can import numpy.
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"

if [ ! -x /usr/bin/chromium ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "Installing Debian's chromium for the browser tests..." >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "Chromium is missing: the browser tests will be skipped (sudo apt-get install chromium)." >&2
    fi
fi

# The Celery integration test starts its own redis-server on a free port.
if [ ! -x /usr/bin/redis-server ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "Installing Debian's redis-server for the task-queue tests..." >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    else
        echo "redis-server is missing: the task-queue test will fail (sudo apt-get install redis-server)." >&2
    fi
fi

# The reverse-proxy test runs the documented nginx configuration (docs/nginx/).
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "Installing Debian's nginx for the reverse-proxy test..." >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
    else
        echo "nginx is missing: the reverse-proxy test will be skipped (sudo apt-get install nginx-light)." >&2
    fi
fi

# The order of the style guide: lint, types, migrations, tests. Skipped when pytest
# arguments are given, so `scripts/run-tests.sh -k flow` stays quick.
if [ $# -eq 0 ]; then
    $bin/ruff check .
    $bin/ruff format --check .
    $bin/mypy analysis surveys studyplatform generation
fi

scripts/with-postgres.sh bash -c "
    set -e
    $bin/python manage.py makemigrations --check --dry-run
    $bin/pytest $*
"
