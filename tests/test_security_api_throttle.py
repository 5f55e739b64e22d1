"""API tokens: an address that sends many wrong tokens is answered 429 (counted in the
shared cache); an analyst paging through a study is not throttled."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.test import RequestFactory
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from rest_framework.throttling import UserRateThrottle

from studyplatform.security import TokenFailureThrottle
from tests.analysis.conftest import make_participant
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db

WRONG = "Token " + "0123456789abcdef" * 2 + "01234567"


@pytest.fixture
def analyst_token() -> str:
    user = get_user_model().objects.create_user(
        "api-analyst", password="pw", is_staff=True, is_superuser=True
    )
    return f"Token {Token.objects.create(user=user).key}"


def get(path: str, authorization: str, address: str) -> int:
    client = APIClient(REMOTE_ADDR=address)
    client.credentials(HTTP_AUTHORIZATION=authorization)
    return client.get(path).status_code


def test_a_burst_of_wrong_tokens_is_answered_429_even_for_a_right_token_after(analyst_token):
    limit = TokenFailureThrottle().num_requests
    assert limit == 20  # the default rate: 20 wrong tokens an hour per address
    statuses = [get("/api/studies/", WRONG, "203.0.113.5") for _ in range(limit + 10)]
    assert statuses[:limit] == [401] * limit
    assert set(statuses[limit:]) == {429}
    client = APIClient(REMOTE_ADDR="203.0.113.5")
    client.credentials(HTTP_AUTHORIZATION=analyst_token)
    response = client.get("/api/studies/")
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    # Another address, and the same address without any token, are not affected.
    assert get("/api/studies/", analyst_token, "198.51.100.5") == 200
    assert APIClient(REMOTE_ADDR="203.0.113.5").get("/api/studies/").status_code == 401


def test_the_failure_count_lives_in_the_shared_cache():
    for _ in range(3):
        assert get("/api/studies/", WRONG, "203.0.113.6") == 401
    # Read back through the cache, as any other worker or app server would.
    probe = RequestFactory().get("/", REMOTE_ADDR="203.0.113.6")
    throttle = TokenFailureThrottle()
    assert len(cache.get(throttle.get_cache_key(probe, None), [])) == 3
    assert "203.0.113.6" not in throttle.get_cache_key(probe, None)  # a pseudonym


def test_an_analyst_paging_through_a_large_study_is_not_throttled(analyst_token):
    study = StudyFactory.create_live()
    for _ in range(3):
        make_participant(study, "real", [{"credible": "yes"}])
    client = APIClient(REMOTE_ADDR="203.0.113.9")
    client.credentials(HTTP_AUTHORIZATION=analyst_token)
    # 300 pages in a row (150,000 rows at the default page size), as fast as the test runs.
    for page in range(300):
        response = client.get(f"/api/studies/{study.slug}/responses/?page_size=1&page=1&n={page}")
        assert response.status_code == 200, (page, response.status_code)


def test_the_user_rate_does_apply(analyst_token, monkeypatch):
    """The paging test above can fail: at a low user rate the same client is throttled.
    (DRF reads the rates into the throttle class at import, so they are patched there.)"""
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", {"user": "5/min"})
    statuses = [get("/api/studies/", analyst_token, "203.0.113.10") for _ in range(7)]
    assert statuses == [200] * 5 + [429] * 2
