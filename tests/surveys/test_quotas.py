"""Quotas per condition, the "study is full" page, and the study closing itself."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from surveys.models import Participant, Study, Trial
from surveys.services import (
    PanelIds,
    StudyFullError,
    participant_enroll,
    study_close_if_full,
    study_design_hash,
)

GOOD = {"credible": "yes", "believable": "3", "accurate": "2", "clear": "4"}


def with_quotas(study: Study, **quotas: int | None) -> Study:
    for name, quota in quotas.items():
        study.conditions.filter(name=name).update(quota=quota)
    return study


def consent(study: Study, pid: str) -> tuple[int, str]:
    response = Client().post(f"/s/{study.slug}/", {"consent": "yes", "PROLIFIC_PID": pid})
    return response.status_code, response.content.decode()


def complete(study: Study, pid: str) -> Participant:
    client = Client()
    assert (
        client.post(f"/s/{study.slug}/", {"consent": "yes", "PROLIFIC_PID": pid}).status_code == 302
    )
    participant = Participant.objects.get(study=study, panel_pid=pid)
    base = f"/p/{participant.token}/"
    client.post(base + "instructions/")
    client.post(base + "article/1/", GOOD)
    client.post(base + "check/", {"attention": "Blue"})
    assert client.post(base + "finish/").status_code == 302
    participant.refresh_from_db()
    assert participant.status == "completed"
    return participant


@pytest.mark.django_db
def test_conditions_fill_up_to_their_quota_then_newcomers_see_the_full_page(live_study):
    with_quotas(live_study, real=1, generated=1)
    assert consent(live_study, "P1")[0] == 302
    assert consent(live_study, "P2")[0] == 302
    assert sorted(Participant.objects.values_list("condition__name", flat=True)) == [
        "generated",
        "real",
    ]
    status, html = consent(live_study, "P3")
    assert status == 503
    assert "This study is full" in html
    assert Participant.objects.count() == 2
    assert Trial.objects.count() == 2
    # The consent page says so before anyone agrees to anything.
    response = Client().get(f"/s/{live_study.slug}/?PROLIFIC_PID=P4")
    assert response.status_code == 503
    assert "This study is full" in response.content.decode()
    assert "I agree to take part" not in response.content.decode()
    # Those already in may still resume.
    response = Client().get(f"/s/{live_study.slug}/?PROLIFIC_PID=P1")
    assert response.status_code == 302
    assert Participant.objects.count() == 2


@pytest.mark.django_db
def test_a_full_condition_is_skipped_and_unlimited_ones_take_the_rest(live_study):
    with_quotas(live_study, real=1, generated=None)
    for i in range(5):
        assert consent(live_study, f"P{i}")[0] == 302
    counts = {
        name: Participant.objects.filter(condition__name=name).count()
        for name in ("real", "generated")
    }
    assert counts == {"real": 1, "generated": 4}


@pytest.mark.django_db
def test_an_expired_reservation_frees_its_place(live_study):
    with_quotas(live_study, real=1, generated=0)
    assert consent(live_study, "P1")[0] == 302
    assert consent(live_study, "P2")[0] == 503
    old = timezone.now() - timedelta(minutes=live_study.reservation_minutes + 1)
    Participant.objects.filter(panel_pid="P1").update(last_seen_at=old)
    assert consent(live_study, "P2")[0] == 302
    assert Participant.objects.get(panel_pid="P2").condition.name == "real"


@pytest.mark.django_db
def test_withdrawal_frees_a_place(live_study):
    with_quotas(live_study, real=1, generated=0)
    assert consent(live_study, "P1")[0] == 302
    participant = Participant.objects.get(panel_pid="P1")
    assert Client().post(f"/p/{participant.token}/withdraw/").status_code == 302
    assert consent(live_study, "P2")[0] == 302


@pytest.mark.django_db
def test_test_sessions_neither_count_nor_are_refused(live_study):
    with_quotas(live_study, real=0, generated=0)
    with pytest.raises(StudyFullError):
        participant_enroll(study=live_study, panel=PanelIds())
    staff = get_user_model().objects.create_user(
        "staff", password="x", is_staff=True, is_superuser=True
    )
    client = Client()
    client.force_login(staff)
    response = client.post(f"/s/{live_study.slug}/preview/")
    assert response.status_code == 302
    assert Participant.objects.get().is_test is True
    with_quotas(live_study, real=1, generated=1)
    assert consent(live_study, "P1")[0] == 302  # the preview took no place


@pytest.mark.django_db
def test_the_study_closes_itself_when_every_quota_is_completed(live_study):
    with_quotas(live_study, real=1, generated=1)
    complete(live_study, "P1")
    live_study.refresh_from_db()
    assert live_study.status == "live"
    complete(live_study, "P2")
    live_study.refresh_from_db()
    assert live_study.status == "closed"
    assert live_study.closed_at is not None
    status, html = consent(live_study, "P3")
    assert status == 410
    assert "This study is not open" in html
    assert Participant.objects.count() == 2


@pytest.mark.django_db
def test_no_self_closing_while_a_condition_is_unlimited(live_study):
    with_quotas(live_study, real=1, generated=None)
    complete(live_study, "P1")
    complete(live_study, "P2")
    live_study.refresh_from_db()
    assert live_study.status == "live"
    assert study_close_if_full(study=live_study) is False


@pytest.mark.django_db
def test_close_if_full_counts_completed_real_participants_only(live_study):
    with_quotas(live_study, real=1, generated=1)
    now = timezone.now()
    for name, status, is_test in [
        ("real", "completed", False),
        ("generated", "in_progress", False),
        ("generated", "completed", True),
    ]:
        Participant.objects.create(
            study=live_study,
            condition=live_study.conditions.get(name=name),
            status=status,
            is_test=is_test,
            seed=0,
            consented_at=now,
            last_seen_at=now,
        )
    assert study_close_if_full(study=live_study) is False
    live_study.refresh_from_db()
    assert live_study.status == "live"
    Participant.objects.filter(status="in_progress").update(status="completed")
    assert study_close_if_full(study=live_study) is True
    assert study_close_if_full(study=live_study) is False  # already closed
    live_study.refresh_from_db()
    assert live_study.status == "closed"


@pytest.mark.django_db
def test_quotas_enter_the_design_hash_only_when_set(live_study):
    before = study_design_hash(study=live_study)
    assert before == live_study.design_hash
    with_quotas(live_study, real=10)
    assert study_design_hash(study=live_study) != before
    with_quotas(live_study, real=None)
    assert study_design_hash(study=live_study) == before
