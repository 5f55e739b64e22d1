"""Credence settings, read from environment variables (12-factor).

Nothing has to be configured for the one-command demo: without ``DATABASE_URL`` the site
uses SQLite in ``var/``, and without ``DJANGO_SECRET_KEY`` it runs in debug mode with a
development key. Production (``DJANGO_DEBUG=false``) refuses to start without a real key.
"""

from __future__ import annotations

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

# Runtime state of a local install (SQLite database, collected static files).
VAR_DIR = Path(env.str("CREDENCE_VAR_DIR", default=str(BASE_DIR / "var")))

DEBUG = env.bool("DJANGO_DEBUG", default=True)

_DEV_SECRET_KEY = "credence-development-only-not-secret"
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=_DEV_SECRET_KEY)
if not DEBUG and SECRET_KEY == _DEV_SECRET_KEY:
    raise ImproperlyConfigured("Set DJANGO_SECRET_KEY when DJANGO_DEBUG is false.")

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    # Analysts' API: per-user tokens (issued in the admin), OpenAPI schema, docs assets
    # served locally (sidecar) because study machines may be offline.
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "surveys",
    "generation",
    "analysis",
    # Project-level orchestration commands (the demo) that span the three apps.
    "studyplatform",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A database that is restarting gets a polite 503 "please retry", not a 500.
    "studyplatform.middleware.DatabaseUnavailableMiddleware",
]

ROOT_URLCONF = "studyplatform.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "studyplatform" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "studyplatform.wsgi.application"
ASGI_APPLICATION = "studyplatform.asgi.application"

# SQLite only when nothing is configured: the zero-setup default of the demo.
if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db_url("DATABASE_URL")}
else:
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "credence.sqlite3",
            # Participants' answers arrive concurrently; wait for the write lock
            # instead of failing with "database is locked".
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    }
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# Persistent connections (a connection per request costs a PostgreSQL backend fork),
# checked before each request's first query, so that after a database restart the next
# request reconnects by itself instead of failing on a dead connection.
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DJANGO_CONN_MAX_AGE", default=60))
DATABASES["default"].setdefault("CONN_HEALTH_CHECKS", True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "staticfiles"
# whitenoise warns on every request when the folder is missing; collectstatic fills it.
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

LOGIN_URL = "admin:login"

REST_FRAMEWORK = {
    # Token first: an anonymous API request then gets 401 with "WWW-Authenticate: Token"
    # (session-only would answer 403). Sessions keep the browsable API and docs usable
    # from a logged-in admin browser.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Credence analysis API",
    "DESCRIPTION": "Read-only access to studies, stimuli, participants, ratings and results.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema describes no data, but the API is for staff only; keep its map private too.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAdminUser"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # One schema name per choice set (several models have a "status").
    "ENUM_NAME_OVERRIDES": {
        "StudyStatusEnum": "surveys.models.Study.Status",
        "StudyDesignEnum": "surveys.models.Study.Design",
        "ParticipantStatusEnum": "surveys.models.Participant.Status",
        "ArticleOriginEnum": "surveys.models.Article.Origin",
        "QuestionKindEnum": "surveys.models.Question.Kind",
        "QuestionScopeEnum": "surveys.models.Question.Scope",
    },
}

SESSION_COOKIE_SAMESITE = "Lax"
SECURE_CONTENT_TYPE_NOSNIFF = True
if not DEBUG:
    SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)

# Where generation loads models from. Offline machines point this at a directory of
# downloaded checkpoints; see resolve_model in generation/engine.py.
CREDENCE_MODEL_DIR = env.str("CREDENCE_MODEL_DIR", default="")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env.str("DJANGO_LOG_LEVEL", default="WARNING")},
}

# A running generation chunk whose worker sent no heartbeat for this long is taken over
# by another worker (the worker beats every fifth of it while it generates).
CREDENCE_CHUNK_STALE_SECONDS = env.int("CREDENCE_CHUNK_STALE_SECONDS", default=300)

# Task queue for generation workers (docker-compose.yml: `redis` and `worker`). Progress
# lives in the database, so no result backend; a task is acknowledged only after it ran,
# so a worker killed mid-chunk leaves its task to another worker.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="redis://127.0.0.1:6379/0")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
