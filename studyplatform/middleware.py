"""Project middleware: the audit log's actor and address, and a polite "please retry"
page while the database is unreachable.

The audit log
-------------
django-auditlog's middleware asks, on every request, whether the user is signed in:
that reads the session from the database even on participant pages, which never write
an audited model. :class:`AuditActorMiddleware` hands the log the request's lazy user
instead, so the session is read only when an audit entry is written; and it records
the client's address as the rate limits see it (``surveys.privacy.client_ip``, which
trusts only ``CREDENCE_TRUSTED_PROXIES``), not the first X-Forwarded-For entry, which
any client can forge.

The database
------------

When PostgreSQL restarts, fails over or runs out of connections, the requests in flight
fail with ``OperationalError`` or ``InterfaceError``. Without this they end as the
generic 500 page (or, in debug mode, a stack trace), which tells a participant that
something is broken for good. These errors are passing ones: every write of the flow
runs in a transaction that the failure rolled back, so the participant loses nothing by
sending the same step again, and with ``CONN_HEALTH_CHECKS`` the next request opens a
fresh connection by itself. So the answer is a 503 with ``Retry-After`` that says so.

Two entry points, because Django turns an exception into a response at every layer of
the middleware stack:

* :class:`DatabaseUnavailableMiddleware` catches the error raised by a view (where
  nearly every query runs), in debug mode too;
* :func:`server_error`, the ``handler500`` view, catches it wherever else it arose (in
  another middleware, e.g. when the session is saved) and otherwise renders the ordinary
  500 page.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from auditlog.middleware import AuditlogMiddleware
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.views import defaults

from surveys.privacy import client_ip

logger = logging.getLogger("studyplatform.database")

# Seconds a client is asked to wait: a fast PostgreSQL restart takes one or two.
RETRY_AFTER_SECONDS = 5

DATABASE_UNAVAILABLE = (OperationalError, InterfaceError)


# The one "please try again" page: static, so that the reverse proxy serves the same file
# when the app cannot answer at all (docs/nginx/).
RETRY_PAGE = Path(__file__).resolve().parent / "static" / "errors" / "retry.html"


@functools.cache
def _retry_page() -> bytes:
    return RETRY_PAGE.read_bytes()


def database_unavailable_response(request: HttpRequest, error: BaseException) -> HttpResponse:
    """The 503 page. Rendered without the request context: the context processors
    (the user, the messages) would read the session, i.e. the database that just
    failed."""
    # Only the kind of error and the view: paths carry participant tokens and query
    # strings panel ids, and neither may reach the logs.
    match = getattr(request, "resolver_match", None)
    logger.warning(
        "Database unavailable during %s %s: %s",
        request.method,
        match.view_name if match is not None else "(unresolved)",
        type(error).__name__,
    )
    response = HttpResponse(_retry_page(), status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    # A retry must reach the server, not a cache.
    response["Cache-Control"] = "no-store"
    return response


class DatabaseUnavailableMiddleware:
    """Turns a database connection failure in a view into :func:`database_unavailable_response`.

    Place it anywhere after the session and authentication middleware: its
    ``process_exception`` runs for exceptions raised by the view only."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponseBase]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponseBase:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DATABASE_UNAVAILABLE):
            return database_unavailable_response(request, exception)
        return None


def server_error(request: HttpRequest) -> HttpResponse:
    """``handler500``: the 503 page for a database failure raised outside a view, the
    project's 500 page for anything else. Django calls it while handling the
    exception, so ``sys.exc_info()`` holds it (as in Django's own technical 500 view)."""
    error = sys.exc_info()[1]
    if isinstance(error, DATABASE_UNAVAILABLE):
        return database_unavailable_response(request, error)
    return defaults.server_error(request)


class AuditActorMiddleware(AuditlogMiddleware):  # type: ignore[misc]
    """django-auditlog's middleware with a lazy actor and the trusted client address
    (see the module's docstring)."""

    @staticmethod
    def _get_actor(request: HttpRequest) -> object:
        # The lazy user itself: auditlog checks it is a user (which loads it) only when
        # it writes an entry. An anonymous user is not one, so no actor is recorded.
        return getattr(request, "user", None)

    @staticmethod
    def _get_remote_addr(request: HttpRequest) -> str | None:
        return client_ip(request) or None
