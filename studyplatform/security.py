"""Per-page Content-Security-Policy and a throttle on wrong API tokens.

Participant pages get the strict policy of ``settings.CONTENT_SECURITY_POLICY`` (this site's
own scripts and styles only). Two kinds of staff-only page carry markup that is not ours and
get a looser policy, chosen here by the URL's name rather than by a path prefix, so that
moving a URL cannot silently drop a page into the wrong policy.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from csp.constants import NONCE, SELF, UNSAFE_INLINE
from csp.middleware import CSPMiddleware, PolicyParts
from django.http import HttpRequest, HttpResponseBase
from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from surveys.privacy import client_ip, keyed_hash

# The admin: Django's own admin scripts are external files, our admin templates' scripts
# carry the request's nonce (``nonce="{{ request.csp_nonce }}"``); its widgets and our
# templates set style attributes, which a nonce cannot cover.
ADMIN_POLICY_UPDATE: dict[str, Any] = {"script-src": [NONCE], "style-src": [UNSAFE_INLINE]}

# Swagger UI and Redoc: their pages' inline scripts carry the nonce (our copies of
# drf-spectacular's templates in studyplatform/templates/drf_spectacular/), but both
# libraries inject styles at run time, and Redoc renders in a blob: worker. Staff-only
# pages that show the schema only.
API_DOCS_POLICY_UPDATE: dict[str, Any] = {
    "script-src": [NONCE],
    "style-src": [UNSAFE_INLINE],
    "worker-src": [SELF, "blob:"],
}
API_DOCS_VIEWS = frozenset({"api:docs", "api:redoc"})


class CredenceCSPMiddleware(CSPMiddleware):
    """django-csp's middleware, with the looser policy of the admin and the API docs."""

    def get_policy_parts(
        self,
        request: HttpRequest,
        response: HttpResponseBase,
        report_only: bool = False,
    ) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        match = request.resolver_match
        if match is None or report_only:
            return parts
        if match.view_name in API_DOCS_VIEWS:
            extra = API_DOCS_POLICY_UPDATE
        elif "admin" in match.namespaces:
            extra = ADMIN_POLICY_UPDATE
        else:
            return parts
        update = {**extra, **(parts.update or {})}
        return replace(parts, update=update)


class TokenFailureThrottle(SimpleRateThrottle):
    """Wrong API tokens per client address, at the rate ``token_failure`` of
    ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]``, in the shared cache.

    DRF's throttles run after authentication, so a wrong token is answered 401 before any
    throttle sees it; this one is consulted by the authentication itself and counts only
    failures, with DRF's sliding window."""

    scope = "token_failure"
    # Set by SimpleRateThrottle.__init__ from the rate; declared for the type checker.
    num_requests: int
    duration: int
    history: list[float]

    def get_cache_key(self, request: Request | HttpRequest, view: object) -> str:
        # A pseudonym of the address, so the cache holds no addresses.
        ident = keyed_hash(value=client_ip(request), purpose="throttle")
        return self.cache_format % {"scope": self.scope, "ident": ident}

    def _load(self, request: Request) -> None:
        self.key = self.get_cache_key(request, None)
        self.history = self.cache.get(self.key, [])
        self.now = self.timer()
        while self.history and self.history[-1] <= self.now - self.duration:
            self.history.pop()

    def exceeded(self, request: Request) -> bool:
        self._load(request)
        return len(self.history) >= self.num_requests

    def record_failure(self, request: Request) -> None:
        self._load(request)
        self.history.insert(0, self.now)
        self.cache.set(self.key, self.history, self.duration)


class ThrottledTokenAuthentication(TokenAuthentication):
    """DRF's token authentication, answering 429 to an address that sent too many wrong
    tokens (even with a right one, as a login lockout does) until the window has passed."""

    def authenticate(self, request: Request) -> tuple[Any, Any] | None:
        header = get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        throttle = TokenFailureThrottle()
        if throttle.exceeded(request):
            raise Throttled(wait=throttle.wait())
        try:
            return super().authenticate(request)
        except AuthenticationFailed:
            throttle.record_failure(request)
            raise
