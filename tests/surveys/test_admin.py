"""The researchers' admin: article import, study lifecycle buttons, the design lock,
monitoring, and read-only participant data."""

from __future__ import annotations

import json
import re

import pytest
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from surveys.models import (
    Article,
    Condition,
    Participant,
    Question,
    Response,
    Study,
    Team,
    TeamMembership,
    WithdrawalLog,
)
from surveys.services import PanelIds, participant_enroll, participant_withdraw
from tests.factories import ConditionFactory, RealArticleFactory, StudyFactory

pytestmark = pytest.mark.django_db

IMPORT_URL = "/admin/surveys/article/import/"


def _jsonl(*records: dict[str, str]) -> bytes:
    return "\n".join(json.dumps(r) for r in records).encode("utf-8")


GOOD = _jsonl(
    {
        "id": "a",
        "title": "Dam opens",
        "body": "The dam opened.\n\nWater flowed.",
        "date": "2020-05-01",
    },
    {"id": "b", "title": "Zoo welcomes panda", "body": "A panda arrived.", "source": "Wikinews"},
)


def _messages(response) -> list[str]:  # type: ignore[no-untyped-def]
    return [str(m) for m in get_messages(response.wsgi_request)]


def _ready_draft() -> Study:
    """A draft that passes validation: the live fixture's design, before launch."""
    study = StudyFactory.create_live()
    Study.objects.filter(pk=study.pk).update(status=Study.Status.DRAFT, design_hash="")
    study.refresh_from_db()
    return study


def _status_url(study: Study, status: str) -> str:
    return reverse("admin:surveys_study_status", args=[study.pk, status])


# --- Article import ------------------------------------------------------------------


def test_changelist_offers_the_import_button(admin_client):
    response = admin_client.get(reverse("admin:surveys_article_changelist"))
    assert response.status_code == 200
    assert IMPORT_URL.encode() in response.content
    assert b"Import articles" in response.content


def test_import_view_creates_articles_and_reports_counts(admin_client):
    assert admin_client.get(IMPORT_URL).status_code == 200
    upload = SimpleUploadedFile("news.jsonl", GOOD, content_type="application/json")
    response = admin_client.post(IMPORT_URL, {"file": upload, "default_license": "CC-BY-2.5"})
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:surveys_article_changelist")
    assert _messages(response) == [
        "Imported news.jsonl: 2 article(s) created, 0 skipped (already in the pool or repeated)."
    ]
    assert set(Article.objects.values_list("external_id", "license")) == {
        ("a", "CC-BY-2.5"),
        ("b", "CC-BY-2.5"),
    }


def test_import_view_shows_line_errors_and_writes_nothing(admin_client):
    bad = GOOD + b"\n{broken\n" + _jsonl({"title": "No body"}) + b"\n"
    upload = SimpleUploadedFile("news.jsonl", bad)
    response = admin_client.post(IMPORT_URL, {"file": upload})
    assert response.status_code == 200
    assert response.context["result"].errors[0].startswith("line 3: invalid JSON")
    assert response.context["result"].errors[1] == "line 4: missing field 'body'"
    assert b"nothing was imported" in response.content
    assert b"line 4: missing field &#x27;body&#x27;" in response.content
    assert Article.objects.count() == 0


def test_import_view_csv_with_explicit_format_and_duplicates(admin_client):
    RealArticleFactory.create(title="Dam opens", body="The dam opened.")
    csv_text = b"title,body\nDam opens,The dam opened.\nNew,Brand new text.\n"
    upload = SimpleUploadedFile("export.txt", csv_text)
    response = admin_client.post(IMPORT_URL, {"file": upload, "format": "csv"})
    assert response.status_code == 302
    assert "1 article(s) created, 1 skipped" in _messages(response)[0]
    assert Article.objects.count() == 2


def test_import_view_refuses_unknown_extension_and_non_utf8(admin_client):
    response = admin_client.post(IMPORT_URL, {"file": SimpleUploadedFile("a.xml", b"<a/>")})
    assert response.status_code == 200
    assert "extension" in response.context["form"].errors["file"][0]
    latin = SimpleUploadedFile("a.csv", "title,body\nCaf\xe9,x\n".encode("latin-1"))
    response = admin_client.post(IMPORT_URL, {"file": latin})
    assert response.status_code == 200
    assert "not UTF-8" in response.context["form"].errors["file"][0]
    assert Article.objects.count() == 0


def test_import_view_refuses_outsiders(client, django_user_model):
    response = client.post(IMPORT_URL, {"file": SimpleUploadedFile("n.jsonl", GOOD)})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    user = django_user_model.objects.create_user(username="reader", password="x")
    client.force_login(user)
    response = client.post(IMPORT_URL, {"file": SimpleUploadedFile("n.jsonl", GOOD)})
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert Article.objects.count() == 0


def test_import_view_needs_the_add_permission(client, django_user_model):
    staff = django_user_model.objects.create_user(username="staff", password="x", is_staff=True)
    client.force_login(staff)
    response = client.post(IMPORT_URL, {"file": SimpleUploadedFile("n.jsonl", GOOD)})
    assert response.status_code == 403
    staff.user_permissions.add(Permission.objects.get(codename="add_article"))
    response = client.post(IMPORT_URL, {"file": SimpleUploadedFile("n.jsonl", GOOD)})
    assert response.status_code == 302
    assert Article.objects.count() == 2


def test_generated_article_page_shows_source_and_model(admin_client):
    from tests.factories import GeneratedArticleFactory

    generated = GeneratedArticleFactory.create(model_name="gpt2-large")
    response = admin_client.get(reverse("admin:surveys_article_change", args=[generated.pk]))
    assert response.status_code == 200
    source_url = reverse("admin:surveys_article_change", args=[generated.source_article_id])
    assert source_url.encode() in response.content
    assert b"gpt2-large" in response.content


def test_add_to_condition_action_respects_the_design_lock(admin_client, live_study):
    draft = StudyFactory.create()
    condition = ConditionFactory.create(study=draft, name="real")
    articles = RealArticleFactory.create_batch(3)
    changelist = reverse("admin:surveys_article_changelist")
    data = {
        "action": "add_to_condition",
        "_selected_action": [a.pk for a in articles],
        "condition": condition.pk,
    }
    response = admin_client.post(changelist, data)
    assert response.status_code == 302
    assert condition.articles.count() == 3
    locked = live_study.conditions.get(name="real")
    before = set(locked.articles.values_list("pk", flat=True))
    response = admin_client.post(changelist, {**data, "condition": locked.pk})
    # A live study's conditions are not even offered.
    assert response.status_code == 302
    assert set(locked.articles.values_list("pk", flat=True)) == before


def test_articles_of_a_live_study_cannot_be_edited_or_deleted(admin_client, live_study):
    article = live_study.conditions.get(name="real").articles.first()
    url = reverse("admin:surveys_article_change", args=[article.pk])
    data = {"title": "Changed", "body": "Changed body.", "in_demo_pool": "on"}
    response = admin_client.post(url, data)
    assert response.status_code == 302
    article.refresh_from_db()
    assert article.title != "Changed"
    delete_url = reverse("admin:surveys_article_delete", args=[article.pk])
    assert admin_client.post(delete_url, {"post": "yes"}).status_code == 403
    assert Article.objects.filter(pk=article.pk).exists()


# --- Study lifecycle ------------------------------------------------------------------


def test_launch_and_close_with_the_buttons(admin_client):
    study = _ready_draft()
    response = admin_client.post(_status_url(study, "live"))
    assert response.status_code == 302
    study.refresh_from_db()
    assert study.status == Study.Status.LIVE
    assert study.launched_at is not None
    assert study.design_hash
    response = admin_client.post(_status_url(study, "closed"))
    assert response.status_code == 302
    study.refresh_from_db()
    assert study.status == Study.Status.CLOSED
    assert study.closed_at is not None


def test_launching_an_incomplete_study_shows_the_error_and_stays_draft(admin_client):
    study = StudyFactory.create()
    ConditionFactory.create(study=study, name="real", is_reference=True)
    ConditionFactory.create(study=study, name="generated")
    response = admin_client.post(_status_url(study, "live"), follow=True)
    assert response.status_code == 200
    errors = [str(m) for m in response.context["messages"] if m.level_tag == "error"]
    assert f'{study}: Condition "generated" has 0 article(s); each participant sees 1.' in errors
    study.refresh_from_db()
    assert study.status == Study.Status.DRAFT
    assert study.design_hash == ""


def test_refused_transition_and_wrong_method(admin_client, live_study):
    response = admin_client.post(_status_url(live_study, "draft"))
    assert response.status_code == 302
    assert _messages(response) == [f"{live_study}: A live study cannot be set to draft."]
    assert admin_client.get(_status_url(live_study, "closed")).status_code == 405
    assert admin_client.post(_status_url(live_study, "bogus")).status_code == 302
    live_study.refresh_from_db()
    assert live_study.status == Study.Status.LIVE


def test_status_buttons_need_the_change_permission(client, django_user_model, live_study):
    # Team roles, not model permissions, decide (tests/surveys/test_teams.py): an analyst
    # of the study's team sees it but may not change its lifecycle.
    staff = django_user_model.objects.create_user(username="viewer", password="x", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="change_study"))
    team = Team.objects.create(name="Viewers")
    TeamMembership.objects.create(team=team, user=staff, role=TeamMembership.Role.ANALYST)
    Study.objects.filter(pk=live_study.pk).update(team=team)
    client.force_login(staff)
    assert client.post(_status_url(live_study, "closed")).status_code == 403
    live_study.refresh_from_db()
    assert live_study.status == Study.Status.LIVE


def test_changelist_actions_launch_and_close(admin_client):
    ready, incomplete = _ready_draft(), StudyFactory.create()
    changelist = reverse("admin:surveys_study_changelist")
    response = admin_client.post(
        changelist, {"action": "set_live", "_selected_action": [ready.pk, incomplete.pk]}
    )
    assert response.status_code == 302
    assert Study.objects.get(pk=ready.pk).status == Study.Status.LIVE
    assert Study.objects.get(pk=incomplete.pk).status == Study.Status.DRAFT
    assert f"{incomplete}: The study has no conditions." in _messages(response)
    admin_client.post(changelist, {"action": "set_closed", "_selected_action": [ready.pk]})
    assert Study.objects.get(pk=ready.pk).status == Study.Status.CLOSED


def test_kreps_button_adds_questions_to_a_draft_and_not_to_a_live_study(admin_client, live_study):
    draft = StudyFactory.create()
    url = reverse("admin:surveys_study_instrument", args=[draft.pk, "kreps"])
    assert admin_client.post(url).status_code == 302
    assert sorted(draft.questions.values_list("key", flat=True)) == [
        "accurate",
        "believable",
        "clear",
        "credible",
    ]
    Question.objects.filter(study=live_study, key="clear").delete()
    url = reverse("admin:surveys_study_instrument", args=[live_study.pk, "kreps"])
    response = admin_client.post(url)
    assert response.status_code == 302
    assert "its design" in _messages(response)[-1]
    assert not live_study.questions.filter(key="clear").exists()


def test_change_page_shows_buttons_links_and_monitor(admin_client, live_study):
    enrolled = [
        participant_enroll(study=live_study, panel=PanelIds(panel="prolific", pid=pid))
        for pid in ("P1", "P2", "P3")
    ]
    Participant.objects.filter(pk=enrolled[0].pk).update(status=Participant.Status.COMPLETED)
    participant_enroll(study=live_study, panel=PanelIds(), is_test=True)
    response = admin_client.get(reverse("admin:surveys_study_change", args=[live_study.pk]))
    assert response.status_code == 200
    content = response.content.decode()
    assert f"http://testserver/s/{live_study.slug}/" in content
    assert f"/s/{live_study.slug}/preview/" in content
    assert "PROLIFIC_PID={{%PROLIFIC_PID%}}" in content
    assert _status_url(live_study, "closed") in content
    assert _status_url(live_study, "draft") not in content
    assert "Add Kreps question set" not in content  # design locked
    rows = re.findall(
        r"<tr><td>([\w-]+)</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td>"
        r"<td>—</td><td>(\d+)</td><td>(\d+)</td></tr>",
        content,
    )
    by_condition = {name: tuple(map(int, counts)) for name, *counts in rows}
    assert all(n[4] == 0 for n in by_condition.values())  # nobody withdrew
    by_condition = {name: n[:4] + n[5:] for name, n in by_condition.items()}
    first = enrolled[0].condition.name
    other = "generated" if first == "real" else "real"
    # Balanced assignment puts P1 and P2 in different conditions; P3 in either.
    started = {c: n[1] for c, n in by_condition.items()}
    assert sorted(started.values()) == [1, 2]
    assert by_condition[first][3] == 1  # completed
    assert by_condition[other][3] == 0
    assert sum(n[4] for n in by_condition.values()) == 1  # the one test session
    assert all(n[0] == 3 for n in by_condition.values())  # articles per condition


def test_changelist_counts_completed_in_progress_and_test(admin_client, live_study):
    first = participant_enroll(study=live_study, panel=PanelIds(panel="prolific", pid="A"))
    participant_enroll(study=live_study, panel=PanelIds(panel="prolific", pid="B"))
    participant_enroll(study=live_study, panel=PanelIds(), is_test=True)
    Participant.objects.filter(pk=first.pk).update(status=Participant.Status.COMPLETED)
    response = admin_client.get(reverse("admin:surveys_study_changelist"))
    assert response.status_code == 200
    (row,) = response.context["cl"].result_list
    assert (row.n_completed, row.n_in_progress, row.n_test) == (1, 1, 1)


# --- The design lock in the forms -----------------------------------------------------


def _study_form_data(study: Study, **changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "title": study.title,
        "slug": study.slug,
        "design": study.design,
        "articles_per_participant": study.articles_per_participant,
        "seed": study.seed,
        "consent_text": study.consent_text,
        "instructions_text": study.instructions_text,
        "debrief_text": study.debrief_text,
        "multiple_comparisons": study.multiple_comparisons,
        "reservation_minutes": study.reservation_minutes,
        "completion_code": study.completion_code,
        "failed_check_code": study.failed_check_code,
        "withdrawn_code": study.withdrawn_code,
        "completion_url": study.completion_url,
        "_save": "Save",
    }
    for prefix, count in (
        ("conditions", study.conditions.count()),
        ("questions", study.questions.count()),
        ("exclusion_rules", study.exclusion_rules.count()),
    ):
        data.update(
            {
                f"{prefix}-TOTAL_FORMS": count,
                f"{prefix}-INITIAL_FORMS": count,
                f"{prefix}-MIN_NUM_FORMS": 0,
                f"{prefix}-MAX_NUM_FORMS": 1000,
            }
        )
    data.update(changes)
    return data


def _new_condition(data: dict[str, object], study: Study) -> None:
    index = int(data["conditions-TOTAL_FORMS"])  # type: ignore[call-overload]
    data["conditions-TOTAL_FORMS"] = index + 1
    data[f"conditions-{index}-name"] = "sneaky"
    data[f"conditions-{index}-label"] = "Added after launch"
    data[f"conditions-{index}-study"] = study.pk


def test_draft_study_form_changes_seed_and_adds_a_condition(admin_client):
    study = StudyFactory.create(seed=1)
    data = _study_form_data(study, seed=99)
    _new_condition(data, study)
    url = reverse("admin:surveys_study_change", args=[study.pk])
    response = admin_client.post(url, data)
    assert response.status_code == 302
    study.refresh_from_db()
    assert study.seed == 99
    assert list(study.conditions.values_list("name", flat=True)) == ["sneaky"]


def test_live_study_form_cannot_change_seed_or_add_a_condition(admin_client, live_study):
    seed, conditions = live_study.seed, set(live_study.conditions.values_list("pk", "name"))
    data = _study_form_data(
        live_study, seed=seed + 1, articles_per_participant=2, title="Renamed while live"
    )
    _new_condition(data, live_study)
    url = reverse("admin:surveys_study_change", args=[live_study.pk])
    response = admin_client.post(url, data)
    assert response.status_code == 302
    live_study.refresh_from_db()
    assert live_study.title == "Renamed while live"  # non-design fields stay editable
    assert live_study.seed == seed
    assert live_study.articles_per_participant == 1
    assert set(live_study.conditions.values_list("pk", "name")) == conditions


def test_live_study_form_shows_design_fields_read_only(admin_client, live_study):
    response = admin_client.get(reverse("admin:surveys_study_change", args=[live_study.pk]))
    assert response.status_code == 200
    form_fields = response.context["adminform"].form.fields
    assert "seed" not in form_fields
    assert "consent_text" not in form_fields
    assert "status" not in form_fields
    assert "title" in form_fields
    for formset in response.context["inline_admin_formsets"]:
        assert not formset.has_add_permission
        assert not formset.has_change_permission
        assert not formset.has_delete_permission


def test_status_is_never_a_form_field(admin_client):
    study = StudyFactory.create()
    url = reverse("admin:surveys_study_change", args=[study.pk])
    response = admin_client.post(url, _study_form_data(study, status="live"))
    assert response.status_code == 302
    study.refresh_from_db()
    assert study.status == Study.Status.DRAFT


def test_condition_of_a_live_study_cannot_be_changed_or_added(admin_client, live_study):
    condition = live_study.conditions.get(name="generated")
    before = set(condition.articles.values_list("pk", flat=True))
    extra = RealArticleFactory.create()
    url = reverse("admin:surveys_condition_change", args=[condition.pk])
    data = {
        "study": live_study.pk,
        "name": "generated",
        "label": "x",
        "articles": [*before, extra.pk],
    }
    assert admin_client.post(url, data).status_code == 403
    assert set(condition.articles.values_list("pk", flat=True)) == before
    add_url = reverse("admin:surveys_condition_add")
    response = admin_client.post(add_url, {"study": live_study.pk, "name": "late", "label": "L"})
    assert response.status_code == 200
    assert "study" in response.context["adminform"].form.errors
    assert not Condition.objects.filter(name="late").exists()


def test_condition_admin_picks_articles_for_a_draft(admin_client):
    study = StudyFactory.create()
    articles = RealArticleFactory.create_batch(2)
    response = admin_client.post(
        reverse("admin:surveys_condition_add"),
        {"study": study.pk, "name": "real", "label": "Real", "articles": [a.pk for a in articles]},
    )
    assert response.status_code == 302
    condition = Condition.objects.get(study=study)
    assert set(condition.articles.all()) == set(articles)


def test_question_form_refuses_a_scale_without_ends(admin_client):
    study = StudyFactory.create()
    data = _study_form_data(study)
    data.update(
        {
            "questions-TOTAL_FORMS": 1,
            "questions-0-key": "believable",
            "questions-0-text": "How believable?",
            "questions-0-kind": "likert",
            "questions-0-scope": "article",
            "questions-0-choices": "[]",
            "questions-0-required": "on",
            "questions-0-position": 0,
            "questions-0-study": study.pk,
        }
    )
    response = admin_client.post(reverse("admin:surveys_study_change", args=[study.pk]), data)
    assert response.status_code == 200
    assert not study.questions.exists()


# --- Participant data is read-only ----------------------------------------------------


def test_participants_trials_and_responses_are_view_only(admin_client, live_study):
    participant = participant_enroll(study=live_study, panel=PanelIds(panel="prolific", pid="Z"))
    credible = live_study.questions.get(key="credible")
    trial = participant.trials.get()
    response_row = Response.objects.create(
        participant=participant, trial=trial, question=credible, value="yes", value_numeric=1
    )
    for model, obj in (("participant", participant), ("trial", trial), ("response", response_row)):
        assert admin_client.get(reverse(f"admin:surveys_{model}_changelist")).status_code == 200
        change = reverse(f"admin:surveys_{model}_change", args=[obj.pk])
        assert admin_client.get(change).status_code == 200
        assert admin_client.post(change, {"value": "no", "status": "withdrawn"}).status_code == 403
        delete = reverse(f"admin:surveys_{model}_delete", args=[obj.pk])
        assert admin_client.post(delete, {"post": "yes"}).status_code == 403
        assert admin_client.get(reverse(f"admin:surveys_{model}_add")).status_code == 403
    response_row.refresh_from_db()
    participant.refresh_from_db()
    assert response_row.value == "yes"
    assert participant.status == Participant.Status.IN_PROGRESS


def test_withdrawal_log_is_view_only_and_monitor_counts_withdrawals(admin_client, live_study):
    participant = participant_enroll(study=live_study, panel=PanelIds(panel="prolific", pid="W"))
    log = participant_withdraw(participant=participant)
    assert admin_client.get(reverse("admin:surveys_withdrawallog_changelist")).status_code == 200
    change = reverse("admin:surveys_withdrawallog_change", args=[log.pk])
    response = admin_client.get(change)
    assert response.status_code == 200
    assert "W" in response.content.decode()
    assert admin_client.post(change, {"panel_pid": "X"}).status_code == 403
    delete = reverse("admin:surveys_withdrawallog_delete", args=[log.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert WithdrawalLog.objects.get().panel_pid == ""  # withdrawal keeps no panel id
    content = admin_client.get(
        reverse("admin:surveys_study_change", args=[live_study.pk])
    ).content.decode()
    withdrawn = re.findall(
        r"<tr><td>([\w-]+)</td>(?:<td>\d+</td>){4}<td>—</td><td>(\d+)</td>", content
    )
    assert dict(withdrawn) == {
        participant.condition.name: "1",
        ({"real", "generated"} - {participant.condition.name}).pop(): "0",
    }


def test_study_form_saves_outcome_codes_on_a_live_study(admin_client, live_study):
    data = _study_form_data(live_study, failed_check_code="FAILED1", withdrawn_code="WD1")
    response = admin_client.post(reverse("admin:surveys_study_change", args=[live_study.pk]), data)
    assert response.status_code == 302
    live_study.refresh_from_db()
    assert (live_study.failed_check_code, live_study.withdrawn_code) == ("FAILED1", "WD1")


def test_condition_quota_is_editable_on_a_draft(admin_client):
    study = StudyFactory.create()
    condition = ConditionFactory.create(study=study, name="real", label="Real")
    url = reverse("admin:surveys_condition_change", args=[condition.pk])
    data = {"study": study.pk, "name": "real", "label": "Real", "quota": "50", "articles": []}
    response = admin_client.post(url, data)
    assert response.status_code == 302
    condition.refresh_from_db()
    assert condition.quota == 50
    response = admin_client.post(url, {**data, "quota": "-1"})
    assert response.status_code == 200
    condition.refresh_from_db()
    assert condition.quota == 50
