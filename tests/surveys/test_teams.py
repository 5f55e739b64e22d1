"""Research teams in the admin: a study's team members see it (researchers change it,
analysts only look), superusers see everything, and other staff get nothing, not even a
name in a drop-down. Results pages and the API: tests/analysis/test_access.py."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from studyplatform.demo import DEMO_TEAM, demo_study
from surveys.models import Condition, Participant, Study, Team, TeamMembership
from surveys.selectors import (
    studies_editable_by,
    studies_visible_to,
    study_role_of,
    teams_for_new_study,
)
from surveys.services import PanelIds, participant_enroll, participant_withdraw
from tests.factories import (
    ConditionFactory,
    GeneratedArticleFactory,
    RealArticleFactory,
    StudyFactory,
)

pytestmark = pytest.mark.django_db

RESEARCHER = TeamMembership.Role.RESEARCHER
ANALYST = TeamMembership.Role.ANALYST


def _staff(username: str, **extra: bool) -> User:
    return User.objects.create_user(username, password="pw", is_staff=True, **extra)


def _member(user: User, team: Team, role: str) -> User:
    TeamMembership.objects.create(team=team, user=user, role=role)
    return user


@dataclass
class World:
    alpha: Team
    beta: Team
    study_a: Study  # live, team alpha
    study_b: Study  # live, team beta
    orphan: Study  # live, no team: superusers only
    researcher: User  # alpha researcher
    analyst: User  # alpha analyst
    outsider: User  # beta researcher, nothing in alpha
    superuser: User


@pytest.fixture
def world() -> World:
    alpha = Team.objects.create(name="Alpha lab")
    beta = Team.objects.create(name="Beta lab")
    study_a = StudyFactory.create_live(team=alpha, title="Alpha study", slug="alpha-study")
    study_b = StudyFactory.create_live(team=beta, title="Beta study", slug="beta-study")
    orphan = StudyFactory.create_live(title="Orphan study", slug="orphan-study")
    for study, pid in ((study_a, "A1"), (study_b, "B1"), (orphan, "O1")):
        participant_enroll(study=study, panel=PanelIds(panel="prolific", pid=pid))
    return World(
        alpha=alpha,
        beta=beta,
        study_a=study_a,
        study_b=study_b,
        orphan=orphan,
        researcher=_member(_staff("res"), alpha, RESEARCHER),
        analyst=_member(_staff("ana"), alpha, ANALYST),
        outsider=_member(_staff("out"), beta, RESEARCHER),
        superuser=_staff("root", is_superuser=True),
    )


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _changelist_slugs(client: Client) -> set[str]:
    response = client.get(reverse("admin:surveys_study_changelist"))
    assert response.status_code == 200
    return {study.slug for study in response.context["cl"].result_list}


# --- The rule, in one place -----------------------------------------------------------


def test_selectors_give_each_user_their_teams_studies_and_roles(world):
    def visible(user: User) -> set[str]:
        return set(studies_visible_to(user=user).values_list("slug", flat=True))

    assert visible(world.researcher) == {"alpha-study"}
    assert visible(world.analyst) == {"alpha-study"}
    assert visible(world.outsider) == {"beta-study"}
    assert visible(world.superuser) == {"alpha-study", "beta-study", "orphan-study"}
    assert visible(_staff("nobody")) == set()
    # Not staff: a membership alone shows nothing.
    plain = _member(User.objects.create_user("plain"), world.alpha, RESEARCHER)
    assert visible(plain) == set()
    assert study_role_of(user=world.researcher, study=world.study_a) == "researcher"
    assert study_role_of(user=world.analyst, study=world.study_a) == "analyst"
    assert study_role_of(user=world.outsider, study=world.study_a) is None
    assert study_role_of(user=world.superuser, study=world.orphan) == "superuser"
    assert study_role_of(user=world.researcher, study=world.orphan) is None
    assert study_role_of(user=plain, study=world.study_a) is None


def test_editable_studies_need_the_researcher_role_in_that_very_team(world):
    # The analyst of alpha is a researcher of beta: that must not make alpha editable.
    _member(world.analyst, world.beta, RESEARCHER)
    assert set(studies_editable_by(user=world.analyst)) == {world.study_b}
    assert set(teams_for_new_study(user=world.analyst)) == {world.beta}
    assert set(studies_editable_by(user=world.researcher)) == {world.study_a}


# --- Outsiders get nothing ------------------------------------------------------------


def test_outsider_sees_none_of_another_teams_pages(world):
    client = _client(world.outsider)
    assert _changelist_slugs(client) == {"beta-study"}
    study_a = world.study_a
    assert client.get(reverse("admin:surveys_study_change", args=[study_a.pk])).status_code == 404
    assert client.get(reverse("admin:surveys_study_history", args=[study_a.pk])).status_code == 404
    assert client.get(reverse("admin:surveys_study_delete", args=[study_a.pk])).status_code == 404
    condition = study_a.conditions.first()
    assert condition is not None
    url = reverse("admin:surveys_condition_change", args=[condition.pk])
    assert client.get(url).status_code == 404
    participant = Participant.objects.get(study=study_a)
    url = reverse("admin:surveys_participant_change", args=[participant.pk])
    assert client.get(url).status_code == 404
    for model in ("condition", "participant", "trial", "response", "withdrawallog"):
        response = client.get(reverse(f"admin:surveys_{model}_changelist"))
        assert response.status_code == 200
        content = response.content.decode()
        # Neither in the rows nor in the list filters.
        for name in ("Alpha study", "alpha-study", "Orphan study", "orphan-study"):
            assert name not in content, model


def test_outsider_cannot_run_the_lifecycle_of_another_teams_study(world):
    client = _client(world.outsider)
    url = reverse("admin:surveys_study_status", args=[world.study_a.pk, "closed"])
    assert client.post(url).status_code == 404
    url = reverse("admin:surveys_study_instrument", args=[world.study_a.pk, "kreps"])
    assert client.post(url).status_code == 404
    world.study_a.refresh_from_db()
    assert world.study_a.status == Study.Status.LIVE


def test_outsider_action_on_a_forged_selection_touches_nothing(world):
    # The changelist's queryset holds only the outsider's studies: a forged id of
    # another team's study is not in it.
    client = _client(world.outsider)
    response = client.post(
        reverse("admin:surveys_study_changelist"),
        {"action": "set_closed", "_selected_action": [world.study_a.pk]},
    )
    assert response.status_code == 302
    world.study_a.refresh_from_db()
    assert world.study_a.status == Study.Status.LIVE


def test_study_without_team_is_for_superusers_only(world):
    url = reverse("admin:surveys_study_change", args=[world.orphan.pk])
    assert _client(world.researcher).get(url).status_code == 404
    assert _client(world.superuser).get(url).status_code == 200
    assert _changelist_slugs(_client(world.superuser)) == {
        "alpha-study",
        "beta-study",
        "orphan-study",
    }


def test_staff_without_a_team_do_not_see_the_study_pages(world):
    client = _client(_staff("lonely"))
    index = client.get(reverse("admin:index"))
    assert index.status_code == 200
    assert reverse("admin:surveys_study_changelist") not in index.content.decode()
    assert client.get(reverse("admin:surveys_study_changelist")).status_code == 403
    assert client.get(reverse("admin:surveys_study_add")).status_code == 403


# --- Members --------------------------------------------------------------------------


def test_researcher_sees_and_changes_their_teams_study(world):
    client = _client(world.researcher)
    index = client.get(reverse("admin:index")).content.decode()
    assert reverse("admin:surveys_study_changelist") in index
    assert reverse("admin:surveys_team_changelist") not in index
    assert _changelist_slugs(client) == {"alpha-study"}
    response = client.get(reverse("admin:surveys_study_change", args=[world.study_a.pk]))
    assert response.status_code == 200
    content = response.content.decode()
    assert reverse("admin:surveys_study_status", args=[world.study_a.pk, "closed"]) in content
    response = client.post(reverse("admin:surveys_study_status", args=[world.study_a.pk, "closed"]))
    assert response.status_code == 302
    world.study_a.refresh_from_db()
    assert world.study_a.status == Study.Status.CLOSED


def test_researcher_sees_their_teams_participants_and_withdrawals(world):
    client = _client(world.researcher)
    participant = Participant.objects.get(study=world.study_a)
    url = reverse("admin:surveys_participant_change", args=[participant.pk])
    response = client.get(url)
    assert response.status_code == 200
    assert "A1" in response.content.decode()
    log = participant_withdraw(participant=participant)
    response = client.get(reverse("admin:surveys_withdrawallog_changelist"))
    assert [row.pk for row in response.context["cl"].result_list] == [log.pk]
    # Still read-only for everyone.
    assert client.post(url, {"status": "completed"}).status_code == 403


def test_analyst_views_but_cannot_change_design_or_lifecycle(world):
    client = _client(world.analyst)
    study = world.study_a
    assert _changelist_slugs(client) == {"alpha-study"}
    response = client.get(reverse("admin:surveys_study_change", args=[study.pk]))
    assert response.status_code == 200
    content = response.content.decode()
    assert reverse("admin:surveys_study_status", args=[study.pk, "closed"]) not in content
    assert 'name="title"' not in content  # read-only page: no inputs
    assert (
        client.post(reverse("admin:surveys_study_status", args=[study.pk, "closed"])).status_code
        == 403
    )
    url = reverse("admin:surveys_study_instrument", args=[study.pk, "detection"])
    assert client.post(url).status_code == 403
    response = client.post(
        reverse("admin:surveys_study_change", args=[study.pk]), {"title": "Renamed"}
    )
    assert response.status_code == 403
    assert client.get(reverse("admin:surveys_study_add")).status_code == 403
    assert client.get(reverse("admin:surveys_condition_add")).status_code == 403
    condition = study.conditions.get(name="real")
    url = reverse("admin:surveys_condition_change", args=[condition.pk])
    assert client.get(url).status_code == 200
    assert client.post(url, {"label": "Renamed"}).status_code == 403
    delete = reverse("admin:surveys_condition_delete", args=[condition.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    study.refresh_from_db()
    condition.refresh_from_db()
    assert (study.status, study.title, condition.label) == ("live", "Alpha study", "Real")
    assert study.questions.count() == 5


def test_analyst_who_researches_elsewhere_is_refused_by_the_changelist_action(world):
    _member(world.analyst, world.beta, RESEARCHER)
    client = _client(world.analyst)
    response = client.post(
        reverse("admin:surveys_study_changelist"),
        {"action": "set_closed", "_selected_action": [world.study_a.pk, world.study_b.pk]},
        follow=True,
    )
    assert response.status_code == 200
    messages = [str(m) for m in response.context["messages"]]
    assert "Alpha study: analysts cannot change it." in messages
    world.study_a.refresh_from_db()
    world.study_b.refresh_from_db()
    assert world.study_a.status == Study.Status.LIVE
    assert world.study_b.status == Study.Status.CLOSED


# --- New studies and foreign-key choices ----------------------------------------------


def _new_study_data(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "title": "New study",
        "slug": "new-study",
        "design": "between",
        "articles_per_participant": 1,
        "seed": 1,
        "consent_text": "c",
        "instructions_text": "i",
        "debrief_text": "d",
        "multiple_comparisons": "holm",
        "reservation_minutes": 60,
        "comprehension_attempts": 2,
    }
    for prefix in ("conditions", "questions", "exclusion_rules"):
        data.update({f"{prefix}-TOTAL_FORMS": 0, f"{prefix}-INITIAL_FORMS": 0})
    data.update(changes)
    return data


def test_new_study_of_a_one_team_researcher_defaults_to_that_team(world):
    client = _client(world.researcher)
    response = client.get(reverse("admin:surveys_study_add"))
    assert response.status_code == 200
    field = response.context["adminform"].form.fields["team"]
    assert field.required
    assert list(field.queryset) == [world.alpha]
    assert field.initial == world.alpha.pk
    # Someone else's team is not a valid choice, and no team is refused too.
    for team in (world.beta.pk, ""):
        response = client.post(reverse("admin:surveys_study_add"), _new_study_data(team=team))
        assert response.status_code == 200
        assert response.context["adminform"].form.errors["team"]
    assert not Study.objects.filter(slug="new-study").exists()
    response = client.post(reverse("admin:surveys_study_add"), _new_study_data(team=world.alpha.pk))
    assert response.status_code == 302
    assert Study.objects.get(slug="new-study").team == world.alpha


def test_researcher_of_two_teams_must_choose_one(world):
    _member(world.researcher, world.beta, ANALYST)
    gamma = Team.objects.create(name="Gamma lab")
    _member(world.researcher, gamma, RESEARCHER)
    client = _client(world.researcher)
    field = client.get(reverse("admin:surveys_study_add")).context["adminform"].form.fields["team"]
    assert set(field.queryset) == {world.alpha, gamma}  # not beta, where they analyse
    assert field.initial is None
    response = client.post(reverse("admin:surveys_study_add"), _new_study_data(team=""))
    assert response.context["adminform"].form.errors["team"] == ["This field is required."]


def test_superuser_may_leave_a_study_without_team(world):
    response = _client(world.superuser).post(reverse("admin:surveys_study_add"), _new_study_data())
    assert response.status_code == 302
    assert Study.objects.get(slug="new-study").team is None


def test_condition_study_choices_are_the_users_editable_drafts(world):
    mine = StudyFactory.create(team=world.alpha, title="Alpha draft")
    theirs = StudyFactory.create(team=world.beta, title="Beta draft")
    client = _client(world.researcher)
    response = client.get(reverse("admin:surveys_condition_add"))
    assert response.status_code == 200
    assert list(response.context["adminform"].form.fields["study"].queryset) == [mine]
    data = {"study": theirs.pk, "name": "forged", "label": "Forged", "per_participant": 0}
    response = client.post(reverse("admin:surveys_condition_add"), data)
    assert response.status_code == 200
    assert "study" in response.context["adminform"].form.errors
    assert not Condition.objects.filter(name="forged").exists()
    response = client.post(reverse("admin:surveys_condition_add"), {**data, "study": mine.pk})
    assert response.status_code == 302
    assert Condition.objects.get(name="forged").study == mine


def test_article_action_offers_and_accepts_only_the_users_conditions(world):
    world.researcher.user_permissions.add(
        Permission.objects.get(codename="view_article"),
        Permission.objects.get(codename="change_article"),
    )
    mine = ConditionFactory.create(study=StudyFactory.create(team=world.alpha), name="mine")
    theirs = ConditionFactory.create(study=StudyFactory.create(team=world.beta), name="theirs")
    article = RealArticleFactory.create()
    client = _client(world.researcher)
    response = client.get(reverse("admin:surveys_article_changelist"))
    assert response.status_code == 200
    choices = list(response.context_data["action_form"].fields["condition"].queryset)
    assert choices == [mine]
    assert str(theirs) not in response.content.decode()
    for condition, added in ((theirs, 0), (mine, 1)):
        client.post(
            reverse("admin:surveys_article_changelist"),
            {
                "action": "add_to_condition",
                "_selected_action": [article.pk],
                "condition": condition.pk,
            },
        )
        assert condition.articles.count() == added
    # The article page names only the conditions of studies the user may see.
    theirs.articles.add(article)
    page = client.get(reverse("admin:surveys_article_change", args=[article.pk])).content.decode()
    assert str(mine) in page
    assert str(theirs) not in page


# --- Teams ----------------------------------------------------------------------------


def test_only_superusers_manage_teams(world):
    world.researcher.user_permissions.add(Permission.objects.get(codename="change_team"))
    client = _client(world.researcher)
    assert client.get(reverse("admin:surveys_team_changelist")).status_code == 403
    url = reverse("admin:surveys_team_change", args=[world.alpha.pk])
    assert client.get(url).status_code == 403
    root = _client(world.superuser)
    response = root.get(url)
    assert response.status_code == 200
    assert "res" in response.content.decode()  # the membership inline
    existing = list(world.alpha.memberships.order_by("team", "user"))
    data: dict[str, object] = {
        "name": "Alpha lab",
        "memberships-TOTAL_FORMS": len(existing) + 1,
        "memberships-INITIAL_FORMS": len(existing),
    }
    for row, membership in enumerate(existing):
        data.update(
            {
                f"memberships-{row}-id": membership.pk,
                f"memberships-{row}-team": world.alpha.pk,
                f"memberships-{row}-user": membership.user_id,
                f"memberships-{row}-role": membership.role,
            }
        )
    data.update(
        {
            f"memberships-{len(existing)}-team": world.alpha.pk,
            f"memberships-{len(existing)}-user": world.outsider.pk,
            f"memberships-{len(existing)}-role": ANALYST,
        }
    )
    response = root.post(url, data)
    assert response.status_code == 302
    assert study_role_of(user=world.outsider, study=world.study_a) == "analyst"


def test_demo_study_belongs_to_the_demo_team():
    study = demo_study(
        real=RealArticleFactory.create_batch(2),
        generated=GeneratedArticleFactory.create_batch(2),
        model_label="tiny",
    )
    assert study.team is not None
    assert study.team.name == DEMO_TEAM


def test_preview_of_another_teams_study_is_not_found_and_writes_nothing(world):
    before = Participant.objects.count()
    response = _client(world.outsider).get(f"/s/{world.study_a.slug}/preview/")
    assert response.status_code == 404
    assert Participant.objects.count() == before
    response = _client(world.researcher).post(f"/s/{world.study_a.slug}/preview/")
    assert response.status_code == 302
    assert Participant.objects.filter(study=world.study_a, is_test=True).count() == 1
