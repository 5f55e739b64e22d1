"""Articles belong to the team that added them: another team's staff can neither list,
view, change nor delete them, and an article another team's study uses is read-only for
outsiders even while that study is a draft. Articles without a team are the shared pool
(the imported corpus): every team reads it, only superusers and curators change it."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from surveys.importers import articles_import
from surveys.models import Article, Team, TeamMembership
from tests.factories import ConditionFactory, RealArticleFactory, StudyFactory

pytestmark = pytest.mark.django_db

RESEARCHER = TeamMembership.Role.RESEARCHER
ANALYST = TeamMembership.Role.ANALYST


@dataclass
class Pool:
    alpha: Team
    beta: Team
    owned: Article  # alpha's, used by alpha's draft study
    shared: Article  # no team, used by alpha's draft study
    free: Article  # no team, used by nobody
    researcher: User  # alpha researcher
    analyst: User  # alpha analyst
    outsider: User  # beta researcher


def _staff(name: str, team: Team | None = None, role: str = RESEARCHER) -> User:
    user = User.objects.create_user(name, password="pw", is_staff=True)
    if team is not None:
        TeamMembership.objects.create(team=team, user=user, role=role)
    return user


@pytest.fixture
def pool() -> Pool:
    alpha, beta = Team.objects.create(name="Alpha"), Team.objects.create(name="Beta")
    owned = RealArticleFactory.create(team=alpha, title="Alpha's own story")
    shared = RealArticleFactory.create(title="A shared Wikinews story")
    free = RealArticleFactory.create(title="Nobody uses this one")
    draft = StudyFactory.create(team=alpha)
    ConditionFactory.create(study=draft, name="real").articles.add(owned, shared)
    return Pool(
        alpha=alpha,
        beta=beta,
        owned=owned,
        shared=shared,
        free=free,
        researcher=_staff("res", alpha),
        analyst=_staff("ana", alpha, ANALYST),
        outsider=_staff("out", beta),
    )


def _as(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _change(article: Article) -> str:
    return reverse("admin:surveys_article_change", args=[article.pk])


def _delete(article: Article) -> str:
    return reverse("admin:surveys_article_delete", args=[article.pk])


def test_another_teams_researcher_cannot_list_view_change_or_delete_its_articles(
    pool: Pool,
) -> None:
    client = _as(pool.outsider)
    listing = client.get(reverse("admin:surveys_article_changelist"))
    assert listing.status_code == 200
    assert pool.owned.title not in listing.content.decode()
    assert pool.owned not in listing.context["cl"].result_list
    assert client.get(_change(pool.owned)).status_code == 404
    assert client.post(_change(pool.owned), {"title": "Defaced"}).status_code == 404
    assert client.post(_delete(pool.owned), {"post": "yes"}).status_code == 404
    bulk = client.post(
        reverse("admin:surveys_article_changelist"),
        {"action": "delete_selected", "_selected_action": [pool.owned.pk], "post": "yes"},
    )
    assert bulk.status_code in (200, 302)
    pool.owned.refresh_from_db()
    assert pool.owned.title == "Alpha's own story"


def test_the_owning_teams_researcher_changes_its_article_and_its_analyst_only_reads(
    pool: Pool,
) -> None:
    analyst = _as(pool.analyst)
    page = analyst.get(_change(pool.owned))
    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    assert analyst.post(_delete(pool.owned), {"post": "yes"}).status_code == 403
    researcher = _as(pool.researcher)
    page = researcher.get(_change(pool.owned))
    assert page.status_code == 200
    assert page.context["has_change_permission"] is True
    assert researcher.post(_delete(pool.free), {"post": "yes"}).status_code == 403  # shared


def test_shared_articles_are_read_by_every_team_but_not_changed_when_another_team_uses_them(
    pool: Pool, django_user_model: type[User]
) -> None:
    outsider = _as(pool.outsider)
    page = outsider.get(_change(pool.shared))
    assert page.status_code == 200
    assert page.context["has_change_permission"] is False
    # A curator of the shared pool (model permission) may change unused shared articles,
    # but not one that another team's draft study shows.
    pool.outsider.user_permissions.add(
        *Permission.objects.filter(codename__in=["change_article", "delete_article"])
    )
    curator = _as(User.objects.get(pk=pool.outsider.pk))
    assert curator.get(_change(pool.free)).context["has_change_permission"] is True
    assert curator.get(_change(pool.shared)).context["has_change_permission"] is False
    assert curator.post(_delete(pool.shared), {"post": "yes"}).status_code == 403
    bulk = curator.post(
        reverse("admin:surveys_article_changelist"),
        {"action": "delete_selected", "_selected_action": [pool.shared.pk], "post": "yes"},
    )
    assert bulk.status_code == 403
    assert Article.objects.filter(pk=pool.shared.pk).exists()


def test_a_researcher_adds_and_imports_articles_into_their_team_only(pool: Pool) -> None:
    client = _as(pool.outsider)
    add = reverse("admin:surveys_article_add")
    form = {"origin": "real", "title": "Beta story", "body": "One.\n\nTwo.", "lede": "One."}
    assert client.post(add, {**form, "team": pool.alpha.pk}).status_code == 200  # refused
    assert not Article.objects.filter(title="Beta story").exists()
    created = client.post(add, {**form, "team": pool.beta.pk})
    assert created.status_code == 302, created.context["adminform"].form.errors
    assert Article.objects.get(title="Beta story").team == pool.beta
    jsonl = b'{"title": "Imported", "body": "Para one.\\n\\nPara two."}\n'
    url = reverse("admin:surveys_article_import")
    refused = client.post(url, {"file": SimpleUploadedFile("a.jsonl", jsonl)})
    assert refused.status_code == 200
    assert not Article.objects.filter(title="Imported").exists()
    done = client.post(url, {"file": SimpleUploadedFile("a.jsonl", jsonl), "team": pool.beta.pk})
    assert done.status_code == 302
    assert Article.objects.get(title="Imported").team == pool.beta


def test_condition_article_picker_leaves_out_other_teams_articles(pool: Pool) -> None:
    mine = StudyFactory.create(team=pool.beta)
    condition = ConditionFactory.create(study=mine, name="real")
    page = _as(pool.outsider).get(reverse("admin:surveys_condition_change", args=[condition.pk]))
    assert page.status_code == 200
    choices = set(page.context["adminform"].form.fields["articles"].queryset)
    assert pool.shared in choices
    assert pool.owned not in choices


def test_a_duplicate_text_names_the_article_only_to_those_who_may_see_it(pool: Pool) -> None:
    # Texts are unique in the whole pool, so a copy of alpha's article is refused for
    # beta too; but beta is not told which article of alpha's it is.
    add = reverse("admin:surveys_article_add")
    for article, user, named in [
        (pool.owned, pool.outsider, False),
        (pool.owned, pool.researcher, True),
        (pool.shared, pool.outsider, True),
    ]:
        team = pool.beta if user == pool.outsider else pool.alpha
        form = {"origin": "real", "title": article.title, "body": article.body, "team": team.pk}
        page = _as(user).post(add, form)
        assert page.status_code == 200
        errors = page.context["adminform"].form.non_field_errors()
        assert errors, "the duplicate was not refused"
        assert (f"#{article.pk}" in errors[0]) is named, errors
    # The import of the same text words its skip the same way.
    line = json.dumps({"title": pool.owned.title, "body": pool.owned.body})
    assert articles_import(text=line, fmt="jsonl", team=pool.beta).skipped_details == [
        "line 1: already in another team's articles"
    ]
    assert articles_import(text=line, fmt="jsonl", team=pool.alpha).skipped_details == [
        f"line 1: already in the pool as article #{pool.owned.pk}"
    ]
