"""The Celery app of the generation workers, wired the standard Django way.

Start a worker with ``celery -A studyplatform worker --concurrency 1`` (one per GPU);
``CELERY_*`` settings come from ``studyplatform/settings.py`` and so from the
environment (``CELERY_BROKER_URL``).
"""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studyplatform.settings")

app = Celery("studyplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
