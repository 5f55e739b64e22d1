"""Settings of the development tools: pytest (pyproject.toml) and mypy's Django plugin.

``studyplatform.settings`` with debug mode on (and so its development key), unless the
environment already says otherwise. Set through the environment rather than after the
import, because the settings refuse to load without it, and so that the processes the tests
start (``manage.py``, gunicorn, Celery workers) run with the same settings.
"""

from __future__ import annotations

import os

os.environ.setdefault("DJANGO_DEBUG", "true")

from studyplatform.settings import *  # noqa: F403
