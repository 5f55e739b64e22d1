"""Generation runs, their samples and chunks belong to the run's team: another team's
staff get 404 on them and cannot review or start them; approving a sample puts the new
stimulus in the run's team."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from generation.models import GenerationChunk, GenerationRun, Sample
from surveys.models import Team, TeamMembership
from tests.factories import GenerationRunFactory, RealArticleFactory, SampleFactory

pytestmark = pytest.mark.django_db


def _member(name: str, team: Team, role: str = TeamMembership.Role.RESEARCHER) -> Client:
    user = User.objects.create_user(name, password="pw", is_staff=True)
    TeamMembership.objects.create(team=team, user=user, role=role)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def teams() -> tuple[Team, Team]:
    return Team.objects.create(name="Alpha"), Team.objects.create(name="Beta")


def test_another_teams_staff_get_404_on_runs_samples_and_chunks(
    teams: tuple[Team, Team],
) -> None:
    alpha, beta = teams
    run = GenerationRunFactory.create(team=alpha, name="Alpha secret run")
    sample = SampleFactory.create(run=run)
    chunk = GenerationChunk.objects.create(run=run, index=0, units=[])
    outsider = _member("out", beta)
    for name, obj in (
        ("generationrun", run),
        ("sample", sample),
        ("generationchunk", chunk),
    ):
        assert (
            outsider.get(reverse(f"admin:generation_{name}_change", args=[obj.pk])).status_code
            == 404
        )
        listing = outsider.get(reverse(f"admin:generation_{name}_changelist"))
        assert listing.status_code == 200
        assert obj not in listing.context["cl"].result_list
    assert (
        outsider.get(reverse("admin:generation_generationrun_changelist")).content.count(
            b"Alpha secret run"
        )
        == 0
    )
    review = reverse("admin:generation_sample_review", args=[sample.pk])
    assert outsider.post(review, {"decision": "approve"}).status_code == 404
    outsider.post(
        reverse("admin:generation_sample_changelist"),
        {"action": "approve_selected", "_selected_action": [sample.pk]},
    )
    outsider.post(
        reverse("admin:generation_generationrun_changelist"),
        {"action": "run_on_workers", "_selected_action": [run.pk]},
    )
    sample.refresh_from_db()
    assert sample.review == Sample.Review.PENDING
    assert not GenerationChunk.objects.exclude(pk=chunk.pk).exists()


def test_the_teams_analyst_sees_but_cannot_review_and_its_researcher_approves(
    teams: tuple[Team, Team],
) -> None:
    alpha, _ = teams
    sample = SampleFactory.create(run=GenerationRunFactory.create(team=alpha))
    review = reverse("admin:generation_sample_review", args=[sample.pk])
    analyst = _member("ana", alpha, TeamMembership.Role.ANALYST)
    assert (
        analyst.get(reverse("admin:generation_sample_change", args=[sample.pk])).status_code == 200
    )
    assert analyst.post(review, {"decision": "approve"}).status_code == 403
    assert _member("res", alpha).post(review, {"decision": "approve"}).status_code == 302
    sample.refresh_from_db()
    assert sample.review == Sample.Review.APPROVED
    assert sample.article is not None
    assert sample.article.team == alpha


def test_a_run_created_by_a_researcher_belongs_to_their_team(teams: tuple[Team, Team]) -> None:
    alpha, beta = teams
    client = _member("res", beta)
    source = RealArticleFactory.create()
    form: dict[str, object] = {
        "source_articles": [source.pk],
        "name": "Beta run",
        "model_name": "embedded",
        "prompt_kind": "lede",
        "context_articles": 0,
        "length_match": "none",
        "samples_per_prompt": 1,
        "max_new_tokens": 20,
        "top_k": 40,
        "top_p": 1.0,
        "temperature": 1.0,
        "seed": 0,
        "batch_size": 1,
        "prepend_lede": "on",
    }
    add = reverse("admin:generation_generationrun_add")
    assert client.post(add, {**form, "team": alpha.pk}).status_code == 200  # not a choice
    assert client.post(add, form).status_code == 200  # a team is required
    assert not GenerationRun.objects.exists()
    response = client.post(add, {**form, "team": beta.pk})
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert GenerationRun.objects.get().team == beta
