"""Admin login lockout (django-axes): repeated wrong passwords lock one username at one
address, counted in the database; everyone else can still sign in."""

from __future__ import annotations

import pytest
from axes.models import AccessAttempt
from django.contrib.auth import get_user_model
from django.test import Client, override_settings

LOGIN = "/admin/login/?next=/admin/"
RIGHT = "correct-horse-battery-staple"


@pytest.fixture
def admins(db):  # type: ignore[no-untyped-def]
    users = get_user_model().objects
    return (
        users.create_superuser("alice", "alice@example.org", RIGHT),
        users.create_superuser("bob", "bob@example.org", RIGHT),
    )


def sign_in(username: str, password: str, **meta: str) -> tuple[int, Client, str]:
    client = Client(**meta)
    response = client.post(LOGIN, {"username": username, "password": password})
    return response.status_code, client, response.content.decode()


def signed_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.django_db
def test_forty_wrong_passwords_then_the_right_one_does_not_sign_in(admins):
    address = {"REMOTE_ADDR": "203.0.113.7"}
    statuses = [sign_in("alice", f"guess-{n}", **address)[0] for n in range(40)]
    # The login form again (200) for the first failures, then the lockout page (429).
    assert statuses[:9] == [200] * 9
    assert set(statuses[10:]) == {429}
    status, client, html = sign_in("alice", RIGHT, **address)
    assert status == 429
    assert not signed_in(client)
    assert "Sign-in locked" in html
    attempt = AccessAttempt.objects.get(username="alice", ip_address="203.0.113.7")
    assert attempt.failures_since_start >= 10

    # The same user from another address, and another user from the same address.
    status, client, _ = sign_in("alice", RIGHT, REMOTE_ADDR="198.51.100.9")
    assert (status, signed_in(client)) == (302, True)
    status, client, _ = sign_in("bob", RIGHT, **address)
    assert (status, signed_in(client)) == (302, True)
    # Neither unlocked the pair that was locked.
    status, client, _ = sign_in("alice", RIGHT, **address)
    assert (status, signed_in(client)) == (429, False)


@pytest.mark.django_db
def test_a_few_wrong_passwords_do_not_lock_anyone_out(admins):
    for n in range(5):
        assert sign_in("alice", f"typo-{n}", REMOTE_ADDR="203.0.113.8")[0] == 200
    status, client, _ = sign_in("alice", RIGHT, REMOTE_ADDR="203.0.113.8")
    assert (status, signed_in(client)) == (302, True)


@pytest.mark.django_db
@override_settings(CREDENCE_TRUSTED_PROXIES=1)
def test_behind_a_proxy_the_lockout_follows_the_client_not_the_proxy(admins):
    """Everyone arrives from the proxy's address; the lockout keys on the address the
    proxy appended (surveys.privacy.client_ip), so one attacker locks out only themself,
    and a forged X-Forwarded-For entry of their own does not change who they are."""
    proxy = "10.0.0.2"
    for n in range(12):
        sign_in(
            "alice",
            f"guess-{n}",
            REMOTE_ADDR=proxy,
            HTTP_X_FORWARDED_FOR=f"192.0.2.{n}, 203.0.113.66",
        )
    assert AccessAttempt.objects.get(username="alice").ip_address == "203.0.113.66"
    status, client, _ = sign_in(
        "alice", RIGHT, REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="203.0.113.66"
    )
    assert (status, signed_in(client)) == (429, False)
    status, client, _ = sign_in(
        "alice", RIGHT, REMOTE_ADDR=proxy, HTTP_X_FORWARDED_FOR="198.51.100.20"
    )
    assert (status, signed_in(client)) == (302, True)
