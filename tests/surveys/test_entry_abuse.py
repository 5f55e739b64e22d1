"""Study entry tried as a crowd of scripts would: anonymous consents that try to fill the
quotas, rate limits on consents and participant POSTs, and input that is not text."""

from __future__ import annotations

import time
from types import SimpleNamespace

import django_ratelimit.core
import pytest
from django.core.cache import cache
from django.http import QueryDict
from django.test import Client, RequestFactory, override_settings

from surveys.models import Participant, Question, Response, Study
from surveys.views.common import _unreadable_input
from tests.factories import QuestionFactory, StudyFactory

pytestmark = pytest.mark.django_db

GOOD = {"credible": "yes", "believable": "3", "accurate": "2", "clear": "4"}


@pytest.fixture(autouse=True)
def fresh_counters(monkeypatch):
    # Rate-limit counters live in the cache, which outlives a test's transaction.
    cache.clear()
    # django-ratelimit counts in fixed windows (a minute for "2/m"): a test whose requests
    # straddle the end of one would see the count start again (seen once in CI, on a loaded
    # machine). Its clock stands still here; nothing else's does.
    now = int(time.time())
    monkeypatch.setattr(django_ratelimit.core, "time", SimpleNamespace(time=lambda: now))
    yield
    cache.clear()


def consent(client: Client, study: Study, **panel: str):  # type: ignore[no-untyped-def]
    return client.post(f"/s/{study.slug}/", {"consent": "yes", **panel})


def quota_study(**kwargs: object) -> Study:
    study = StudyFactory.create_live(**kwargs)
    study.conditions.update(quota=20)
    return study


# ---------------------------------------------------------------------------------------
# The attack of the issue: anonymous consents filling the quotas


@override_settings(CREDENCE_ENTRY_RATE="1000/m")
def test_forty_anonymous_consents_do_not_lock_out_a_panel_participant():
    study = quota_study()
    for _ in range(40):  # a fresh cookie each time, no panel id
        assert consent(Client(), study).status_code == 302
    assert Participant.objects.filter(study=study).count() == 40
    page = Client().get(f"/s/{study.slug}/?PROLIFIC_PID=REAL1")
    assert page.status_code == 200
    assert 'name="consent"' in page.content.decode()
    response = consent(Client(), study, PROLIFIC_PID="REAL1")
    assert response.status_code == 302
    assert Participant.objects.get(panel_pid="REAL1").status == "in_progress"


def test_a_panel_participant_returning_in_another_browser_is_remembered_there():
    study = StudyFactory.create_live()
    first = consent(Client(), study, PROLIFIC_PID="P1")
    token = first["Location"].split("/")[2]
    other = Client()  # another browser: the panel's link brings them back
    back = other.get(f"/s/{study.slug}/?PROLIFIC_PID=P1")
    assert back.status_code == 302
    assert token in back["Location"]
    # Later the bare study link (a bookmark, a link without the id) leads to the same
    # participation instead of a new anonymous one.
    bare = other.get(f"/s/{study.slug}/")
    assert bare.status_code == 302
    assert token in bare["Location"]
    assert Participant.objects.filter(study=study).count() == 1


@override_settings(CREDENCE_ENTRY_RATE="1000/m")
def test_anonymous_participations_hold_a_place_from_their_first_answer():
    study = quota_study()
    study.conditions.update(quota=1)
    client = Client()
    token = consent(client, study)["Location"].split("/")[2]
    assert not study_is_full_now(study)
    client.post(f"/p/{token}/instructions/")
    client.post(f"/p/{token}/article/1/", GOOD)
    # One of the two places is now held; a second answering anonymous one takes the other.
    other = Client()
    token2 = consent(other, study)["Location"].split("/")[2]
    other.post(f"/p/{token2}/instructions/")
    other.post(f"/p/{token2}/article/1/", GOOD)
    assert study_is_full_now(study)
    assert Client().get(f"/s/{study.slug}/?PROLIFIC_PID=LATE").status_code == 503


def study_is_full_now(study: Study) -> bool:
    from surveys.services import study_is_full

    return study_is_full(study=study)


@override_settings(CREDENCE_ENTRY_RATE="1000/m")
def test_with_a_required_panel_id_no_anonymous_consent_enrols():
    study = quota_study(require_panel_id=True)
    for _ in range(40):
        assert consent(Client(), study).status_code == 403
    assert Participant.objects.count() == 0
    assert consent(Client(), study, PROLIFIC_PID="REAL1").status_code == 302
    assert Participant.objects.count() == 1


# ---------------------------------------------------------------------------------------
# Rate limits


@override_settings(CREDENCE_ENTRY_RATE="5/m")
def test_consents_from_one_network_are_rate_limited_per_study():
    study = quota_study()
    other_study = quota_study()
    statuses = [consent(Client(), study).status_code for _ in range(7)]
    assert statuses == [302] * 5 + [429] * 2
    assert Participant.objects.filter(study=study).count() == 5
    refused = consent(Client(), study, PROLIFIC_PID="P9")
    assert refused.status_code == 429
    assert refused["Retry-After"] == "60"
    assert "Please wait a moment" in refused.content.decode()
    assert not Participant.objects.filter(panel_pid="P9").exists()
    # The start page itself (a GET) is never limited, nor is another network or study.
    assert Client().get(f"/s/{study.slug}/").status_code == 200
    assert consent(Client(REMOTE_ADDR="10.0.0.7"), study).status_code == 302
    assert consent(Client(), other_study).status_code == 302


@override_settings(CREDENCE_ENTRY_RATE="2/m", CREDENCE_TRUSTED_PROXIES=1)
def test_behind_a_proxy_the_limit_is_per_client_address():
    study = quota_study()
    for address in ("198.51.100.1", "198.51.100.2"):
        statuses = [
            consent(Client(HTTP_X_FORWARDED_FOR=address), study).status_code for _ in range(3)
        ]
        assert statuses == [302, 302, 429]


@override_settings(CREDENCE_POST_RATE="4/m")
def test_posts_to_a_participation_are_rate_limited_and_write_nothing_when_refused():
    study = quota_study()
    client = Client()
    token = consent(client, study, PROLIFIC_PID="P1")["Location"].split("/")[2]
    for _ in range(3):
        assert client.post(f"/p/{token}/instructions/").status_code == 302
    assert client.post(f"/p/{token}/article/1/", GOOD).status_code == 302
    answers = Response.objects.count()
    refused = client.post(f"/p/{token}/article/1/", {**GOOD, "credible": "no"})
    assert refused.status_code == 429
    assert Response.objects.count() == answers
    assert not Response.objects.filter(value="no").exists()
    # Reading pages is not limited.
    assert client.get(f"/p/{token}/article/1/").status_code == 200


@override_settings(CREDENCE_ENTRY_RATE="", CREDENCE_POST_RATE="")
def test_an_empty_rate_switches_the_limits_off():
    study = quota_study()
    assert all(consent(Client(), study).status_code == 302 for _ in range(40))


# ---------------------------------------------------------------------------------------
# Input that is not text


def free_text_study() -> Study:
    study = quota_study()
    QuestionFactory.create(
        study=study, key="why", kind=Question.Kind.FREE_TEXT, required=False, position=9
    )
    return study


@pytest.mark.parametrize(
    "query", ["PROLIFIC_PID=a%00b", "workerId=a%01b", "PROLIFIC_PID=P1&x%00=1"]
)
def test_a_nul_byte_in_the_study_link_gets_a_clear_400(query):
    study = quota_study()
    response = Client().get(f"/s/{study.slug}/?{query}")
    assert response.status_code == 400
    assert "not text" in response.content.decode()
    assert Participant.objects.count() == 0


@pytest.mark.parametrize(
    "data",
    [
        {"consent": "yes", "PROLIFIC_PID": "a\x00b"},
        {"consent": "yes\x00"},
        {"consent": "yes", "STUDY_ID": "S\x1b[31m"},
        {"consent": "yes", "PROLIFIC_PID": "P1", "\x00": "x"},
    ],
)
def test_a_nul_byte_or_control_character_in_a_consent_writes_nothing(data):
    study = quota_study()
    response = Client().post(f"/s/{study.slug}/", data)
    assert response.status_code == 400
    assert Participant.objects.count() == 0


@pytest.mark.parametrize("bad", ["a\x00b", "bell\x07", "esc\x1b", "del\x7f", "c1\x85"])
def test_a_free_text_answer_that_is_not_text_gets_a_400_and_writes_nothing(bad):
    study = free_text_study()
    client = Client()
    token = consent(client, study, PROLIFIC_PID="P1")["Location"].split("/")[2]
    client.post(f"/p/{token}/instructions/")
    response = client.post(f"/p/{token}/article/1/", {**GOOD, "why": bad})
    assert response.status_code == 400
    assert "not text" in response.content.decode()
    assert Response.objects.count() == 0
    # Tabs, newlines and any script of the world are text.
    text = "Line one\r\n\tLine two: \u0663 \u4e2d\u6587 \U0001f600"
    assert client.post(f"/p/{token}/article/1/", {**GOOD, "why": text}).status_code == 302
    assert Response.objects.get(question__key="why").value == text.strip()


def test_invalid_utf8_is_read_as_replacement_characters_never_a_500():
    study = free_text_study()
    client = Client()
    token = consent(client, study, PROLIFIC_PID="P1")["Location"].split("/")[2]
    client.post(f"/p/{token}/instructions/")
    body = b"credible=yes&believable=3&accurate=2&clear=4&why=%ff%fe%c3"
    response = client.post(
        f"/p/{token}/article/1/", body, content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 302
    assert Response.objects.get(question__key="why").value == "\ufffd\ufffd\ufffd"
    assert Client().get(f"/s/{study.slug}/?PROLIFIC_PID=%ff%fe").status_code == 200


def test_lone_surrogates_are_unreadable():
    request = RequestFactory().get("/")
    request.GET = QueryDict(mutable=True)
    request.GET["PROLIFIC_PID"] = "a\ud800b"
    assert _unreadable_input(request)
    request.GET["PROLIFIC_PID"] = "ab"
    assert not _unreadable_input(request)
