"""Credence settings, read from environment variables (12-factor).

What is not configured is production: debug mode is off unless ``DJANGO_DEBUG=true``, and
without debug mode the site refuses to start without ``DJANGO_SECRET_KEY``. Development
says so explicitly: ``make demo`` and ``scripts/run-tests.sh`` set ``DJANGO_DEBUG=true``,
and pytest and mypy load ``studyplatform.settings_dev``, which does the same. Debug mode
brings a development key, so nothing else has to be configured for the demo; without
``DATABASE_URL`` the site uses SQLite in ``var/``.

Importing this module reads the environment and nothing else: it creates no folders.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

# Runtime state of a local install (SQLite database, collected static files).
VAR_DIR = Path(env.str("CREDENCE_VAR_DIR", default=str(BASE_DIR / "var")))

# Off unless asked for: a server started with nothing configured must not show tracebacks
# and settings to the world, nor run on a key everyone can read here.
DEBUG = env.bool("DJANGO_DEBUG", default=False)

_DEV_SECRET_KEY = "credence-development-only-not-secret"
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=_DEV_SECRET_KEY if DEBUG else "")
if not DEBUG and SECRET_KEY in {"", _DEV_SECRET_KEY}:
    raise ImproperlyConfigured(
        "Set DJANGO_SECRET_KEY when DJANGO_DEBUG is false (the default); "
        "on a development machine, set DJANGO_DEBUG=true instead."
    )

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
    # Audit log of design, lifecycle, export and token events (see surveys/audit.py).
    "auditlog",
    # Admin login lockout: failed attempts counted in the database, per username and address.
    "axes",
    # Registers django-ratelimit's system checks on the cache it counts in.
    "django_ratelimit",
    "surveys",
    "generation",
    "analysis",
    # Project-level orchestration commands (the demo) that span the three apps.
    "studyplatform",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Content-Security-Policy on every response (see CONTENT_SECURITY_POLICY below).
    "studyplatform.security.CredenceCSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication: records the signed-in user as the actor of audit entries
    # (django-auditlog's, without its session read on every request).
    "studyplatform.middleware.AuditActorMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A database that is restarting gets a polite 503 "please retry", not a 500.
    "studyplatform.middleware.DatabaseUnavailableMiddleware",
    # Last, as django-axes asks: it turns a lockout signalled by the backend into a page.
    "axes.middleware.AxesMiddleware",
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

# SQLite only when nothing is configured: the zero-setup default of the demo. Django's
# backend, except that it makes VAR_DIR when it first opens the file (studyplatform/sqlite).
if env.str("DATABASE_URL", default=""):
    DATABASES = {"default": env.db_url("DATABASE_URL")}
else:
    DATABASES = {
        "default": {
            "ENGINE": "studyplatform.sqlite",
            "NAME": VAR_DIR / "credence.sqlite3",
            # Participants' answers arrive concurrently; wait for the write lock
            # instead of failing with "database is locked".
            "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
        }
    }
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# Persistent connections save a connect per request; the health check makes a worker
# notice a restarted database at the start of the next request and reconnect, instead of
# failing that request on a dead socket.
DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DJANGO_CONN_MAX_AGE", default=60))
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# Nothing that another worker or app server needs may live in one process's memory:
# rate-limit counters, throttles and the lockout are shared through Redis when configured
# (Django's own RedisCache), otherwise through a table in the database, which the
# studyplatform migration 0001 creates (so `migrate` is the only setup step).
CREDENCE_CACHE_TABLE = "credence_cache"
_CACHE_URL = env.str("CREDENCE_CACHE_URL", default="") or env.str("REDIS_URL", default="")
if _CACHE_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": _CACHE_URL,
            "KEY_PREFIX": "credence",
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": CREDENCE_CACHE_TABLE,
        }
    }

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
# Collected static files. The Docker image collects them at build time outside the var/
# volume (CREDENCE_STATIC_ROOT=/app/static), so a container starts without compressing
# every file again.
# collectstatic makes the folder. Until then whitenoise (outside debug mode) warns that it is
# missing, once per process: a production server that nobody ran collectstatic for.
STATIC_ROOT = Path(env.str("CREDENCE_STATIC_ROOT", default=str(VAR_DIR / "staticfiles")))
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

AUTHENTICATION_BACKENDS = [
    # First, so a locked-out username+address is refused before its password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

# Behind this many reverse proxies (each appending to X-Forwarded-For), the client's address
# is the entry that many hops from the right (surveys.privacy.client_ip). 0: REMOTE_ADDR.
CREDENCE_TRUSTED_PROXIES = env.int("CREDENCE_TRUSTED_PROXIES", default=0)

# Key of the keyed hashes that stand for panel ids, networks and browsers
# (surveys.privacy). Empty: derived from SECRET_KEY. Set it on its own in production, so
# that rotating SECRET_KEY does not let withdrawn or pseudonymised panel ids enter again.
CREDENCE_PSEUDONYM_KEY = env.str("CREDENCE_PSEUDONYM_KEY", default="")

# Admin login lockout (django-axes): after AXES_FAILURE_LIMIT wrong passwords for one
# username from one address, that pair is refused for the cool-off time, even with the
# right password. Counted in the database (AccessAttempt), so every worker agrees.
AXES_ENABLED = env.bool("CREDENCE_LOGIN_LOCKOUT", default=True)
AXES_FAILURE_LIMIT = env.int("CREDENCE_LOGIN_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(hours=env.float("CREDENCE_LOGIN_COOLOFF_HOURS", default=1.0))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_CLIENT_IP_CALLABLE = "surveys.privacy.client_ip"
AXES_LOCKOUT_TEMPLATE = "lockout.html"
AXES_RESET_ON_SUCCESS = True
# The access log of successful logins would keep addresses of staff forever; failures are
# what the lockout needs.
AXES_DISABLE_ACCESS_LOG = True

# django-ratelimit (participant entry and POSTs) counts per client address in the default
# cache, reading the address the same way as everything else.
RATELIMIT_IP_META_KEY = "surveys.privacy.client_ip"
RATELIMIT_USE_CACHE = "default"
# Participant rate limits (surveys/views/common.py), "N/s|m|h"; empty switches one off. Consents per
# client network and study, and POSTs per participation: a person consents once and submits
# a page every few seconds at most. Load tests from one address raise the first.
CREDENCE_ENTRY_RATE = env.str("CREDENCE_ENTRY_RATE", default="30/m")
CREDENCE_POST_RATE = env.str("CREDENCE_POST_RATE", default="60/m")
SILENCED_SYSTEM_CHECKS = [
    # django-ratelimit lists neither Django's own RedisCache (its incr is Redis INCR, atomic)
    # nor DatabaseCache (get-then-set: concurrent hits can each count once less, so a burst
    # may pass a few requests over the limit, never lock anyone out wrongly) as supported.
    "django_ratelimit.E003",
    "django_ratelimit.W001",
]

REST_FRAMEWORK = {
    # Token first: an anonymous API request then gets 401 with "WWW-Authenticate: Token"
    # (session-only would answer 403). Sessions keep the browsable API and docs usable
    # from a logged-in admin browser.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "studyplatform.security.ThrottledTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Throttle counters live in the default cache, shared by all workers. Unauthenticated
    # requests never reach the throttles (the permission check answers 401 first); wrong
    # tokens are limited per address by ThrottledTokenAuthentication.
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("CREDENCE_API_ANON_RATE", default="60/min"),
        # An analyst's script paging through a large study stays far below this.
        "user": env.str("CREDENCE_API_USER_RATE", default="600/min"),
        "token_failure": env.str("CREDENCE_API_TOKEN_FAILURE_RATE", default="20/hour"),
    },
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
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
if not DEBUG:
    # Production is served over HTTPS only. Behind a TLS-terminating proxy, set
    # DJANGO_BEHIND_TLS_PROXY so that the proxy's X-Forwarded-Proto says the request was
    # secure (the proxy must set that header itself, overwriting any client's).
    SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    if env.bool("DJANGO_BEHIND_TLS_PROXY", default=False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # One year, the value the HSTS preload list asks for; start lower (e.g. 300) on a domain
    # that is not yet served over HTTPS everywhere. The preload directive only allows the
    # domain's owner to submit it to browsers' list (hstspreload.org); it submits nothing.
    SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=True)

# Content-Security-Policy (django-csp 4): only this site's own scripts, styles, images and
# connections; no inline script or style, no plugins, no framing. The admin and the API docs
# get the looser policies in studyplatform.security (staff-only pages with third-party
# markup); participant pages get exactly this one.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
    },
}

# Where generation loads models from. Offline machines point this at a directory of
# downloaded checkpoints; see resolve_model in generation/engine/registry.py.
CREDENCE_MODEL_DIR = env.str("CREDENCE_MODEL_DIR", default="")
# Processes a foreground run (`manage.py generate`, the demo) uses on the CPU: 0 is one per
# physical core, 1 this process only (generation.services.default_workers).
CREDENCE_GENERATION_WORKERS = env.int("CREDENCE_GENERATION_WORKERS", default=0)

# Logs never carry panel ids, participant tokens or answers: every handler masks
# /p/<token>/ paths and panel-id parameters (studyplatform.logging), and the request
# loggers' messages name the path only.
_LOG_LEVEL = env.str("DJANGO_LOG_LEVEL", default="WARNING")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "studyplatform.logging.RedactPersonalData"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["redact"]}},
    "root": {"handlers": ["console"], "level": _LOG_LEVEL},
    "loggers": {
        # Django gives its loggers handlers of its own (a console one in debug mode, mail to
        # ADMINS, runserver's request log), without the filter: replaced by ours.
        "django": {"handlers": ["console"], "level": _LOG_LEVEL, "propagate": False},
        "django.server": {"handlers": ["console"], "level": "INFO", "propagate": False},
    },
}

# Fraud signals (surveys.fraud): a participation is flagged as part of a burst when more
# than this many participations of a study arrived from one network within these minutes.
CREDENCE_BURST_PARTICIPATIONS = env.int("CREDENCE_BURST_PARTICIPATIONS", default=5)
CREDENCE_BURST_MINUTES = env.int("CREDENCE_BURST_MINUTES", default=10)

# Task queue for generation workers (docker-compose.yml: `redis` and `worker`): one task
# per chunk of a run. Unset (the demo), there is no queue and the admin says to run
# `manage.py generate <run>`. Progress lives in the database, so no result backend.
# Delivery is at least once, which is safe because a chunk is idempotent: a task is
# acknowledged only after it ran and handed back when its pool process dies, and Redis
# hands back a task whose whole worker is lost once it was unacknowledged for the
# visibility timeout. That must be longer than the longest chunk (a worker's first
# includes loading the model), or a chunk still running is made twice (harmless, wasted).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=6 * 3600)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": _VISIBILITY_TIMEOUT,
    # Workers look for tasks to hand back every tenth of the timeout (at most every
    # 10 s), one Redis scan a look.
    "unacked_restore_interval": max(1, min(10, _VISIBILITY_TIMEOUT // 10)),
    "unacked_restore_throttle": 1,
}
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
