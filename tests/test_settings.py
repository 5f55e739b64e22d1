"""Settings come from the environment and fail loudly on a dangerous configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _settings_probe(env: dict[str, str], expression: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL"))}
    code = (
        "import django, os; os.environ['DJANGO_SETTINGS_MODULE']='studyplatform.settings'; "
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


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    result = _settings_probe({"DJANGO_DEBUG": "false", "CREDENCE_VAR_DIR": str(tmp_path)}, "1")
    assert result.returncode != 0
    assert "Set DJANGO_SECRET_KEY" in result.stderr


def test_sqlite_in_var_dir_when_no_database_is_configured(tmp_path):
    result = _settings_probe(
        {"CREDENCE_VAR_DIR": str(tmp_path)}, "settings.DATABASES['default']['NAME']"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "credence.sqlite3")


def test_database_url_selects_postgresql(tmp_path):
    result = _settings_probe(
        {"DATABASE_URL": "postgres://u:p@dbhost:5433/credence", "CREDENCE_VAR_DIR": str(tmp_path)},
        "settings.DATABASES['default']['ENGINE'], settings.DATABASES['default']['HOST']",
    )
    assert result.returncode == 0, result.stderr
    assert "postgresql" in result.stdout
    assert "dbhost" in result.stdout
