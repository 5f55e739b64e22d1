"""Keyed hashes of what identifies a person: the one place where an IP address, a browser
cookie or a panel id becomes a pseudonym.

A participant's IP address is never stored; what is stored is an HMAC of it under a key that
only the site holds (``CREDENCE_PSEUDONYM_KEY``, by default derived from ``SECRET_KEY``), so
the same network gives the same hash within a deployment and nothing can be reversed or
matched against another site's data. ``purpose`` separates the uses, so a hash made for one
(say, network bursts) can never be joined with another (panel ids).
"""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings
from django.http import HttpRequest


def _key() -> bytes:
    key = settings.CREDENCE_PSEUDONYM_KEY or settings.SECRET_KEY
    return hashlib.sha256(f"credence-pseudonym:{key}".encode()).digest()


def keyed_hash(*, value: str, purpose: str) -> str:
    """HMAC-SHA256 of ``value`` for ``purpose``, as 64 hex digits; empty for an empty value."""
    if not value:
        return ""
    message = f"{purpose}\x1f{value}".encode("utf-8", "surrogatepass")
    return hmac.new(_key(), message, hashlib.sha256).hexdigest()


def client_ip(request: HttpRequest) -> str:
    """The client's address. Behind ``CREDENCE_TRUSTED_PROXIES`` reverse proxies (each
    appending to X-Forwarded-For), the entry that many hops from the right, which the
    client cannot forge; otherwise REMOTE_ADDR. Rate limits, the login lockout and the
    network hash all read the address through this function."""
    proxies = int(getattr(settings, "CREDENCE_TRUSTED_PROXIES", 0))
    if proxies > 0:
        hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")]
        hops = [h for h in hops if h]
        if len(hops) >= proxies:
            return str(hops[-proxies])
    return str(request.META.get("REMOTE_ADDR", ""))


def network_hash(request: HttpRequest) -> str:
    """A pseudonym of the client's IP address (never the address itself)."""
    return keyed_hash(value=client_ip(request), purpose="network")
