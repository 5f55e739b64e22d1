"""The kreps template (surveys.study_templates): the command and the admin action set up
the between-subjects GPT-2 credibility design with the published rates as the original
result, team-scoped; and the original-result fields themselves (Condition.original_rate,
original_n; Study.original_citation, equivalence_bound): checked, chosen among the design
fields, frozen once live, and in the design hash only when set, so that the hashes stored
for studies launched before the fields existed still verify."""

from __future__ import annotations

import hashlib
import io
import json

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction
from django.test import Client
from django.urls import reverse

from analysis.services import study_report
from surveys.models import Condition, Question, Study, Team, TeamMembership
from surveys.selectors import CLASSIC_RATES
from surveys.services import study_design_document, study_design_hash, study_set_status
from surveys.study_templates import study_apply_template
from tests.factories import GeneratedArticleFactory, RealArticleFactory, StudyFactory
from tests.surveys.test_admin import _study_form_data

pytestmark = pytest.mark.django_db

KREPS_CONDITIONS = ["real", "gpt2-355m", "gpt2-774m", "gpt2-1558m"]


def _run(*args: str) -> str:
    out = io.StringIO()
    call_command("study_template", *args, stdout=out)
    return out.getvalue()


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _member(username: str, team: Team, role: str) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    TeamMembership.objects.create(team=team, user=user, role=role)
    return user


# --- The command ------------------------------------------------------------------------


def test_the_command_sets_up_the_gpt2_design_with_the_published_rates():
    team = Team.objects.create(name="Media lab")
    out = _run("kreps", "--slug", "gpt2-rep", "--team", "Media lab")
    study = Study.objects.get(slug="gpt2-rep")
    assert study.team == team
    assert study.status == Study.Status.DRAFT
    assert study.design == Study.Design.BETWEEN
    assert study.articles_per_participant == 1
    assert "Kreps, S., McCain, R. M. & Brundage, M. (2022)" in study.original_citation
    conditions = {c.name: c for c in study.conditions.all()}
    assert list(conditions) == KREPS_CONDITIONS
    assert [c.name for c in study.conditions.filter(is_reference=True)] == ["real"]
    # The rates this codebase quotes (GPT-2 release report): 83% real, 72% GPT-2 774M.
    assert CLASSIC_RATES == (0.83, 0.72)
    assert conditions["real"].original_rate == 0.83
    assert conditions["gpt2-774m"].original_rate == 0.72
    # Not in the codebase: left empty rather than made up.
    assert conditions["gpt2-355m"].original_rate is None
    assert conditions["gpt2-1558m"].original_rate is None
    assert all(c.original_n is None for c in conditions.values())
    assert study.equivalence_bound is None
    # The Kreps instrument, not a copy of it: a yes/no credibility question scored as
    # such and the three four-point items.
    questions = {q.key: q for q in study.questions.all()}
    assert list(questions) == ["credible", "believable", "accurate", "clear"]
    assert questions["credible"].kind == Question.Kind.BINARY
    assert questions["credible"].scoring == {"role": "credible"}
    assert all(questions[k].scale_max == 4 for k in ("believable", "accurate", "clear"))
    assert not study.conditions.filter(articles__isnull=False).exists()
    assert "condition gpt2-774m: original rate 72%" in out
    assert "condition gpt2-355m: original rate not entered" in out


def test_the_command_refuses_an_unknown_team_or_a_taken_slug_and_writes_nothing():
    Team.objects.create(name="Media lab")
    with pytest.raises(CommandError, match='No team "Nobody"'):
        _run("kreps", "--slug", "gpt2-rep", "--team", "Nobody")
    StudyFactory.create(slug="taken")
    with pytest.raises(CommandError, match=r"(?i)slug already exists"):
        _run("kreps", "--slug", "taken", "--team", "Media lab")
    assert list(Study.objects.values_list("slug", flat=True)) == ["taken"]
    assert not Condition.objects.exists()


def test_a_template_study_launches_once_it_has_articles_and_reports_the_replication():
    Team.objects.create(name="Media lab")
    _run("kreps", "--slug", "gpt2-rep", "--team", "Media lab")
    study = Study.objects.get(slug="gpt2-rep")
    for condition in study.conditions.all():
        factory = RealArticleFactory if condition.is_reference else GeneratedArticleFactory
        condition.articles.add(*[factory.create() for _ in range(2)])
    study_set_status(study=study, status=Study.Status.LIVE)
    study.refresh_from_db()
    assert study.status == Study.Status.LIVE
    document = study_design_document(study=study)
    assert document["original_citation"] == study.original_citation
    rates = {c["name"]: c.get("original_rate") for c in document["conditions"]}
    assert rates == {"gpt2-1558m": None, "gpt2-355m": None, "gpt2-774m": 0.72, "real": 0.83}
    report = study_report(study=study)
    assert report.replication is not None
    assert list(report.replication["condition"]) == ["gpt2-1558m", "gpt2-355m", "gpt2-774m"]


def test_the_template_keeps_questions_the_study_has_and_refuses_a_study_with_conditions(
    live_study,
):
    draft = StudyFactory.create()
    Question.objects.create(study=draft, key="credible", text="Mine?", kind="binary")
    study_apply_template(study=draft, name="kreps")
    assert draft.questions.get(key="credible").text == "Mine?"
    assert draft.questions.count() == 4
    with pytest.raises(ValidationError, match="already has conditions"):
        study_apply_template(study=draft, name="kreps")
    with pytest.raises(ValidationError):
        study_apply_template(study=live_study, name="kreps")
    with pytest.raises(ValueError, match="Unknown template"):
        study_apply_template(study=StudyFactory.create(), name="nope")


# --- The admin action, team-scoped -----------------------------------------------------


def test_a_researcher_sets_up_an_empty_draft_of_their_team_from_the_admin():
    alpha = Team.objects.create(name="Alpha lab")
    draft = StudyFactory.create(team=alpha)
    client = _client(_member("res", alpha, TeamMembership.Role.RESEARCHER))
    response = client.post(
        reverse("admin:surveys_study_changelist"),
        {"action": "setup_kreps_template", "_selected_action": [draft.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "set up as the Kreps et al. experiment" in response.content.decode()
    assert list(draft.conditions.values_list("name", flat=True)) == KREPS_CONDITIONS
    assert draft.conditions.get(name="gpt2-774m").original_rate == 0.72


def test_analysts_and_other_teams_cannot_set_up_a_study_from_the_template():
    alpha, beta = Team.objects.create(name="Alpha lab"), Team.objects.create(name="Beta lab")
    draft = StudyFactory.create(team=alpha)
    for user in (
        _member("ana", alpha, TeamMembership.Role.ANALYST),
        _member("out", beta, TeamMembership.Role.RESEARCHER),
    ):
        response = _client(user).post(
            reverse("admin:surveys_study_changelist"),
            {"action": "setup_kreps_template", "_selected_action": [draft.pk]},
        )
        assert response.status_code in (200, 302, 403)
    assert not draft.conditions.exists()
    assert not draft.questions.exists()


def test_the_action_says_why_it_leaves_a_live_study_alone(admin_client, live_study):
    response = admin_client.post(
        reverse("admin:surveys_study_changelist"),
        {"action": "setup_kreps_template", "_selected_action": [live_study.pk]},
        follow=True,
    )
    assert response.status_code == 200
    assert "is live: its design" in response.content.decode()
    assert live_study.conditions.count() == 2


# --- The original-result fields: hash, admin, constraints ------------------------------


def test_without_an_original_result_the_design_document_is_as_it_was(live_study):
    document = study_design_document(study=live_study)
    assert not {"original_citation", "equivalence_bound"} & set(document)
    for condition in document["conditions"]:
        assert not {"original_rate", "original_n"} & set(condition)
    old_shape = json.dumps(document, sort_keys=True).encode("utf-8")
    assert hashlib.sha256(old_shape).hexdigest() == live_study.design_hash
    assert study_design_hash(study=live_study) == live_study.design_hash


@pytest.mark.parametrize(
    ("where", "field", "value"),
    [
        ("study", "original_citation", "Kreps et al. (2022)"),
        ("study", "equivalence_bound", 0.1),
        ("condition", "original_rate", 0.72),
        ("condition", "original_n", 500),
    ],
)
def test_each_original_result_field_enters_the_design_hash_when_set(
    live_study, where, field, value
):
    stored = live_study.design_hash
    if where == "study":
        Study.objects.filter(pk=live_study.pk).update(**{field: value})
    else:
        Condition.objects.filter(study=live_study, name="generated").update(**{field: value})
    live_study.refresh_from_db()
    assert study_design_hash(study=live_study) != stored
    if where == "study":
        assert study_design_document(study=live_study)[field] == value
    Study.objects.filter(pk=live_study.pk).update(original_citation="", equivalence_bound=None)
    Condition.objects.filter(study=live_study).update(original_rate=None, original_n=None)
    live_study.refresh_from_db()
    assert study_design_hash(study=live_study) == stored


def test_a_draft_enters_the_original_result_among_the_design_fields(admin_client):
    study = StudyFactory.create()
    url = reverse("admin:surveys_study_change", args=[study.pk])
    page = admin_client.get(url)
    design = next(fs for fs in page.context["adminform"] if (fs.name or "").startswith("Design"))
    assert {"original_citation", "equivalence_bound"} <= set(design.fields)
    html = page.content.decode()  # the condition inline's empty row
    assert 'name="conditions-__prefix__-original_rate"' in html
    assert 'name="conditions-__prefix__-original_n"' in html
    data = _study_form_data(study, original_citation="Kreps et al.", equivalence_bound="0.1")
    response = admin_client.post(url, data)
    assert response.status_code == 302
    study.refresh_from_db()
    assert study.original_citation == "Kreps et al."
    assert study.equivalence_bound == 0.1


def test_an_equivalence_bound_outside_0_and_1_is_refused(admin_client):
    study = StudyFactory.create()
    url = reverse("admin:surveys_study_change", args=[study.pk])
    response = admin_client.post(url, _study_form_data(study, equivalence_bound="10"))
    assert response.status_code == 200
    assert "equivalence_bound" in response.context["adminform"].form.errors
    study.refresh_from_db()
    assert study.equivalence_bound is None


def test_the_database_refuses_a_rate_that_is_not_a_proportion(live_study):
    condition = live_study.conditions.get(name="generated")
    condition.original_rate = 72.0  # a percentage typed where a proportion belongs
    with pytest.raises(IntegrityError), transaction.atomic():
        condition.save(update_fields=["original_rate"])
    with pytest.raises(IntegrityError), transaction.atomic():
        Study.objects.filter(pk=live_study.pk).update(equivalence_bound=0)


def test_the_original_result_is_frozen_once_live(admin_client, live_study):
    url = reverse("admin:surveys_study_change", args=[live_study.pk])
    page = admin_client.get(url)
    assert "original_citation" not in page.context["adminform"].form.fields
    assert "equivalence_bound" not in page.context["adminform"].form.fields
    response = admin_client.post(
        url, _study_form_data(live_study, original_citation="Changed", equivalence_bound="0.2")
    )
    assert response.status_code == 302
    live_study.refresh_from_db()
    assert live_study.original_citation == ""
    assert live_study.equivalence_bound is None
    assert study_design_hash(study=live_study) == live_study.design_hash
