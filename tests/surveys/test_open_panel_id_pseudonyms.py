"""Panel ids are personal data: withdrawal keeps none, the API lists none of a withdrawn
participant, and ``pseudonymise_panel_ids`` replaces a closed study's ids by keyed hashes
without changing any analysis result or letting an id enter twice."""

from __future__ import annotations

import io

import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from analysis.frames import participants_frame, responses_frame
from analysis.services import StudyReport, study_report
from surveys.models import Participant, Study, WithdrawalLog
from surveys.privacy import keyed_hash
from surveys.services import (
    PanelIds,
    participant_enroll,
    participant_find,
    participant_withdraw,
    study_set_status,
)
from tests.analysis.conftest import make_participant, rating
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db


def consent(client: Client, study: Study, **panel: str):  # type: ignore[no-untyped-def]
    return client.post(f"/s/{study.slug}/", {"consent": "yes", **panel})


def hashed(pid: str) -> str:
    return keyed_hash(value=pid, purpose="panel")


def rated(study: Study) -> Study:
    """Analysed: real 4 (3 credible), generated 5 (2 credible); plus excluded ones."""
    for credible, believable in [("yes", 4), ("yes", 4), ("yes", 3), ("no", 1)]:
        make_participant(study, "real", [rating(credible, believable)])
    for credible, believable in [("yes", 2), ("yes", 2), ("no", 2), ("no", 3), ("no", 1)]:
        make_participant(study, "generated", [rating(credible, believable)])
    make_participant(study, "real", [rating("no")], attention="Red")
    make_participant(study, "generated", [rating("yes")], status=Participant.Status.IN_PROGRESS)
    return study


def report_tables(report: StudyReport) -> dict[str, object]:
    tables: dict[str, object] = {"ledger": report.ledger, "notes": report.notes}
    for name in ("proportions", "comparisons", "likert", "index_means", "index_tests", "power"):
        frame: pd.DataFrame = getattr(report, name)
        tables[name] = frame.to_csv(index=False)
    return tables


# ---------------------------------------------------------------------------------------
# Withdrawal


def test_withdrawal_keeps_no_panel_id_yet_the_id_cannot_enter_again():
    study = StudyFactory.create_live()
    client = Client()
    token = consent(client, study, PROLIFIC_PID="P1", STUDY_ID="S", SESSION_ID="SESS1")[
        "Location"
    ].split("/")[2]
    assert client.post(f"/p/{token}/withdraw/").status_code == 302
    participant = Participant.objects.get()
    assert (participant.panel_pid, participant.panel_session_id) == ("", "")
    assert participant.panel_pid_hash == hashed("P1")
    assert WithdrawalLog.objects.get().panel_pid == ""
    # The same id, in a fresh browser, is sent to the withdrawn participation's debrief.
    again = consent(Client(), study, PROLIFIC_PID="P1")
    assert again["Location"] == f"/p/{token}/"
    assert (
        participant_enroll(study=study, panel=PanelIds(panel="prolific", pid="P1")) == participant
    )
    assert Participant.objects.count() == 1


def test_the_api_lists_no_panel_id_of_a_withdrawn_participant(django_user_model):
    study = StudyFactory.create_live()
    kept = participant_enroll(study=study, panel=PanelIds(panel="prolific", pid="KEEP1"))
    gone = participant_enroll(study=study, panel=PanelIds(panel="prolific", pid="GONE1"))
    participant_withdraw(participant=gone)
    user = django_user_model.objects.create_user("a", is_staff=True, is_superuser=True)
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    body = api.get(f"/api/studies/{study.slug}/participants/?format=json")
    assert body.status_code == 200, body.content
    assert "GONE1" not in body.content.decode()
    pids = {row["participant_id"]: row["panel_pid"] for row in body.json()["results"]}
    assert pids == {kept.pk: "KEEP1", gone.pk: ""}


# ---------------------------------------------------------------------------------------
# Pseudonymisation of a closed study


def test_pseudonymising_keeps_every_analysis_result_and_blocks_re_entry():
    study = rated(StudyFactory.create_live())
    before_report = report_tables(study_report(study=study))
    before_people = participants_frame(study=study)
    before_answers = responses_frame(study=study)
    original = dict(Participant.objects.values_list("pk", "panel_pid"))
    study = study_set_status(study=study, status=Study.Status.CLOSED)

    out = io.StringIO()
    call_command("pseudonymise_panel_ids", study.slug, stdout=out)
    assert f"{len(original)} panel id(s) pseudonymised" in out.getvalue()

    after = dict(Participant.objects.values_list("pk", "panel_pid"))
    assert after == {pk: hashed(pid) for pk, pid in original.items()}
    assert not set(after.values()) & set(original.values())
    assert report_tables(study_report(study=study)) == before_report
    after_people = participants_frame(study=study)
    after_answers = responses_frame(study=study)
    pd.testing.assert_frame_equal(
        after_people.drop(columns="panel_pid"), before_people.drop(columns="panel_pid")
    )
    pd.testing.assert_frame_equal(
        after_answers.drop(columns="panel_pid"), before_answers.drop(columns="panel_pid")
    )
    # The same rows share a pseudonym as they shared an id.
    assert list(after_answers["panel_pid"]) == [hashed(p) for p in before_answers["panel_pid"]]
    # An original id still finds its participation, so it cannot take part again.
    pid = next(iter(original.values()))
    found = participant_find(study=study, panel=PanelIds(panel="prolific", pid=pid))
    assert found is not None
    assert found.panel_pid == hashed(pid)


def test_pseudonymising_twice_changes_nothing_more():
    study = rated(StudyFactory.create_live())
    study = study_set_status(study=study, status=Study.Status.CLOSED)
    call_command("pseudonymise_panel_ids", study.slug, stdout=io.StringIO())
    first = list(Participant.objects.order_by("pk").values_list("panel_pid", "panel_pid_hash"))
    out = io.StringIO()
    call_command("pseudonymise_panel_ids", study.slug, stdout=out)
    assert "0 panel id(s) pseudonymised" in out.getvalue()
    assert (
        list(Participant.objects.order_by("pk").values_list("panel_pid", "panel_pid_hash")) == first
    )


def test_pseudonymising_refuses_a_study_that_is_not_closed_and_touches_only_its_own():
    study = StudyFactory.create_live()
    other = StudyFactory.create_live()
    participant_enroll(study=study, panel=PanelIds(panel="prolific", pid="P1"))
    participant_enroll(study=other, panel=PanelIds(panel="prolific", pid="P2"))
    with pytest.raises(CommandError, match="close it"):
        call_command("pseudonymise_panel_ids", study.slug, stdout=io.StringIO())
    with pytest.raises(CommandError, match="No study"):
        call_command("pseudonymise_panel_ids", "nope", stdout=io.StringIO())
    study_set_status(study=study, status=Study.Status.CLOSED)
    call_command("pseudonymise_panel_ids", study.slug, stdout=io.StringIO())
    assert Participant.objects.get(study=other).panel_pid == "P2"
    assert Participant.objects.get(study=study).panel_pid == hashed("P1")
