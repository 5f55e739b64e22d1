"""Settings come from the environment and fail loudly on a dangerous configuration."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _settings_probe(
    env: dict[str, str], expression: str, *, settings_module: str = "studyplatform.settings"
) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "DATABASE_URL", "CREDENCE_CACHE_URL", "REDIS_URL"))
    }
    code = (
        f"import django, os; os.environ['DJANGO_SETTINGS_MODULE']='{settings_module}'; "
        f"django.setup(); from django.conf import settings; print({expression})"
    )
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


# A development machine says so (make demo, scripts/run-tests.sh, studyplatform.settings_dev).
DEVELOPMENT = {"DJANGO_DEBUG": "true"}


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = _settings_probe({"DJANGO_DEBUG": "false", "CREDENCE_VAR_DIR": str(tmp_path)}, "1")
    assert result.returncode != 0
    assert "Set DJANGO_SECRET_KEY" in result.stderr


def test_nothing_configured_is_production_and_refuses_to_start_without_a_key(tmp_path):
    result = _settings_probe({"CREDENCE_VAR_DIR": str(tmp_path)}, "1")
    assert result.returncode != 0
    assert "Set DJANGO_SECRET_KEY" in result.stderr
    assert "DJANGO_DEBUG=true" in result.stderr  # says what a developer wants instead


def test_debug_is_off_by_default(tmp_path):
    result = _settings_probe(
        {"DJANGO_SECRET_KEY": "a-real-key-from-the-environment", "CREDENCE_VAR_DIR": str(tmp_path)},
        "settings.DEBUG, settings.SECRET_KEY",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "a-real-key-from-the-environment"]


def test_development_is_debug_mode_with_the_development_key(tmp_path):
    result = _settings_probe(
        {**DEVELOPMENT, "CREDENCE_VAR_DIR": str(tmp_path)}, "settings.DEBUG, settings.SECRET_KEY"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "credence-development-only-not-secret"]


def test_production_refuses_the_development_key_even_when_given_explicitly(tmp_path):
    result = _settings_probe(
        {
            "DJANGO_SECRET_KEY": "credence-development-only-not-secret",
            "CREDENCE_VAR_DIR": str(tmp_path),
        },
        "1",
    )
    assert result.returncode != 0
    assert "Set DJANGO_SECRET_KEY" in result.stderr


def test_the_development_settings_module_turns_debug_mode_on(tmp_path):
    """What pytest and mypy load (pyproject.toml), and what the processes tests start inherit."""
    result = _settings_probe(
        {"CREDENCE_VAR_DIR": str(tmp_path)},
        "settings.DEBUG, os.environ['DJANGO_DEBUG']",
        settings_module="studyplatform.settings_dev",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "true"]


def test_importing_the_settings_creates_no_folders(tmp_path):
    var = tmp_path / "var"
    for env in (DEVELOPMENT, PRODUCTION):
        result = _settings_probe(
            {**env, "CREDENCE_VAR_DIR": str(var)},
            "settings.DATABASES['default']['NAME'], settings.STATIC_ROOT",
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == [str(var / "credence.sqlite3"), str(var / "staticfiles")]
        assert not var.exists()


def test_the_sqlite_database_folder_is_made_when_the_database_is_first_opened(tmp_path):
    var = tmp_path / "deeper" / "var"
    result = _settings_probe(
        {**DEVELOPMENT, "CREDENCE_VAR_DIR": str(var)},
        "__import__('django.db').db.connection.ensure_connection()",
    )
    assert result.returncode == 0, result.stderr
    assert (var / "credence.sqlite3").is_file()
    assert not (var / "staticfiles").exists()  # collectstatic makes that one


def test_sqlite_in_var_dir_when_no_database_is_configured(tmp_path):
    result = _settings_probe(
        {**DEVELOPMENT, "CREDENCE_VAR_DIR": str(tmp_path)},
        "settings.DATABASES['default']['NAME']",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "credence.sqlite3")


def test_database_url_selects_postgresql(tmp_path):
    result = _settings_probe(
        {
            **DEVELOPMENT,
            "DATABASE_URL": "postgres://u:p@dbhost:5433/credence",
            "CREDENCE_VAR_DIR": str(tmp_path),
        },
        "settings.DATABASES['default']['ENGINE'], settings.DATABASES['default']['HOST']",
    )
    assert result.returncode == 0, result.stderr
    assert "postgresql" in result.stdout
    assert "dbhost" in result.stdout


PRODUCTION = {
    "DJANGO_DEBUG": "false",
    "DJANGO_SECRET_KEY": "x7#pQ2-production-like-key-of-sixty-characters-or-more-9fK3mZ8vL1",
    "DJANGO_ALLOWED_HOSTS": "credence.example.org",
}


def test_check_deploy_is_clean_with_the_production_settings(tmp_path):
    """What `manage.py check --deploy` says of a production configuration: nothing."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL"))}
    base.pop("CREDENCE_CACHE_URL", None)
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**base, **PRODUCTION, "CREDENCE_VAR_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "System check identified no issues" in output
    assert "WARNINGS" not in output


def test_check_deploy_warns_when_cookies_are_made_insecure(tmp_path):
    """The check above can fail: the compose file's old default (insecure cookies)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL"))}
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={
            **base,
            **PRODUCTION,
            "DJANGO_SECURE_COOKIES": "false",
            "CREDENCE_VAR_DIR": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "security.W012" in result.stderr  # SESSION_COOKIE_SECURE
    assert "security.W016" in result.stderr  # CSRF_COOKIE_SECURE


def test_production_sends_hsts_redirects_to_https_and_trusts_the_proxy_only_when_told(tmp_path):
    expression = (
        "settings.SECURE_HSTS_SECONDS, settings.SECURE_SSL_REDIRECT, "
        "settings.SECURE_PROXY_SSL_HEADER, settings.X_FRAME_OPTIONS, "
        "settings.SECURE_REFERRER_POLICY"
    )
    plain = _settings_probe({**PRODUCTION, "CREDENCE_VAR_DIR": str(tmp_path)}, expression)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip() == "31536000 True None DENY same-origin"
    proxied = _settings_probe(
        {
            **PRODUCTION,
            "DJANGO_BEHIND_TLS_PROXY": "true",
            "DJANGO_HSTS_SECONDS": "300",
            "CREDENCE_VAR_DIR": str(tmp_path),
        },
        expression,
    )
    assert proxied.returncode == 0, proxied.stderr
    assert proxied.stdout.strip() == (
        "300 True ('HTTP_X_FORWARDED_PROTO', 'https') DENY same-origin"
    )


def test_the_cache_is_redis_when_configured_and_the_database_otherwise(tmp_path):
    expression = "settings.CACHES['default']['BACKEND'], settings.CACHES['default']['LOCATION']"
    database = _settings_probe({**DEVELOPMENT, "CREDENCE_VAR_DIR": str(tmp_path)}, expression)
    assert database.returncode == 0, database.stderr
    assert database.stdout.split() == [
        "django.core.cache.backends.db.DatabaseCache",
        "credence_cache",
    ]
    redis = _settings_probe(
        {
            **DEVELOPMENT,
            "CREDENCE_CACHE_URL": "redis://cachehost:6379/1",
            "CREDENCE_VAR_DIR": str(tmp_path),
        },
        expression,
    )
    assert redis.returncode == 0, redis.stderr
    assert redis.stdout.split() == [
        "django.core.cache.backends.redis.RedisCache",
        "redis://cachehost:6379/1",
    ]


def test_database_connections_persist_with_health_checks(tmp_path):
    result = _settings_probe(
        {
            **DEVELOPMENT,
            "DATABASE_URL": "postgres://u:p@dbhost:5433/credence",
            "CREDENCE_VAR_DIR": str(tmp_path),
        },
        "settings.DATABASES['default']['CONN_MAX_AGE'], "
        "settings.DATABASES['default']['CONN_HEALTH_CHECKS']",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["60", "True"]


def test_the_generation_process_count_comes_from_the_environment_and_fails_loudly(tmp_path):
    base = {**DEVELOPMENT, "CREDENCE_VAR_DIR": str(tmp_path)}
    default = _settings_probe(base, "settings.CREDENCE_GENERATION_WORKERS")
    assert default.returncode == 0, default.stderr
    assert default.stdout.strip() == "0"
    three = _settings_probe(
        {**base, "CREDENCE_GENERATION_WORKERS": "3"}, "settings.CREDENCE_GENERATION_WORKERS"
    )
    assert three.returncode == 0, three.stderr
    assert three.stdout.strip() == "3"
    bad = _settings_probe({**base, "CREDENCE_GENERATION_WORKERS": "many"}, "1")
    assert bad.returncode != 0
    assert "many" in bad.stderr


# Reads of the environment outside the settings, each for a reason: gunicorn's own config
# file (read by gunicorn, not Django) and huggingface_hub's offline switches, which the engine
# reads at call time because huggingface_hub reads them only once, at import.
ENVIRONMENT_READERS_BESIDES_SETTINGS = {
    "studyplatform/gunicorn.conf.py",
    "generation/engine/loading.py",
}
_ENVIRONMENT_READ = re.compile(r"os\.getenv\(|os\.environ(\.get\(|\[|\b(?!\.setdefault))")


def test_only_the_settings_read_the_environment():
    """One place reads each variable; the rest of the code reads django.conf.settings.
    (Setting a default for a child process, os.environ.setdefault, is not a read.)"""
    readers = set()
    for app in ("analysis", "surveys", "generation", "studyplatform"):
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts or path.name in {"settings.py", "settings_dev.py"}:
                continue
            if _ENVIRONMENT_READ.search(path.read_text(encoding="utf-8")):
                readers.add(str(path.relative_to(ROOT)))
    assert readers == ENVIRONMENT_READERS_BESIDES_SETTINGS
