"""Every staff-side URL of the site, tried as each kind of outsider to a team's study.

The URLs come from the URL conf (``django.urls.get_resolver()``), not from a list kept by
hand: every named URL is either filled with the team's objects here (``_url_cases``) or
listed in ``PUBLIC`` with the reason it holds no team data, and
``test_every_url_is_covered`` fails when a new one is neither. The admin's standard pages
(changelist, add, change, delete, history) are generated for every registered ModelAdmin
and need the model's team object in ``_objects``: registering a new admin without saying
which of its objects belongs to the team fails here too.

Each outsider (another team's researcher and analyst, staff without a team, anonymous, an
API token of another team) must be refused (404, 403, 401, 405 or a redirect to the login
page) or, on list pages, shown only what is theirs; no response body may contain the
team's study title, slug, panel ids, article, condition, question, run or team names.
A superuser's request to the same URL must not be a 404, so a wrong argument cannot make
the test pass.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from auditlog.models import LogEntry
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin
from django.contrib.auth.models import Group, Permission, User
from django.db.models import Model
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.authtoken.models import Token

from analysis import plots
from generation.models import GenerationChunk, GenerationRun, Sample
from surveys.models import (
    Article,
    ArticleScore,
    Condition,
    Participant,
    Question,
    Response,
    Study,
    Team,
    TeamMembership,
    Trial,
    WithdrawalLog,
)
from surveys.services import PanelIds, participant_enroll, participant_withdraw
from tests.factories import GenerationRunFactory, RealArticleFactory, SampleFactory, StudyFactory

# Every secret below contains this marker; no outsider's response body may.
MARKER = "zqx"

# Named URLs that show no team's data to anyone, and why.
PUBLIC: dict[str, str] = {
    "admin:index": "lists only the models the user may see (pages below are tested)",
    "admin:login": "login form",
    "admin:logout": "logout",
    "admin:password_change": "the user's own password",
    "admin:password_change_done": "the user's own password",
    "admin:jsi18n": "translations",
    "admin:view_on_site": "redirects to a model's get_absolute_url; none defines one (below)",
    "admin:autocomplete": "no ModelAdmin declares autocomplete_fields; see below",
    "api:schema": "the OpenAPI schema: no data",
    "api:docs": "API docs page: no data",
    "api:redoc": "API docs page: no data",
    "surveys:about": "participants' about page",
}
# Participant pages are reached with the participation's own unguessable token (a
# capability); another participation's token is tested with the participant flow.
PARTICIPANT_PAGES = {
    "surveys:start",
    "surveys:resume",
    "surveys:instructions",
    "surveys:article",
    "surveys:about_you",
    "surveys:comprehension",
    "surveys:check",
    "surveys:finish",
    "surveys:debrief",
    "surveys:withdraw",
}
# Unnamed patterns allowed: Django's admin catch-all and its old-style object URL, which
# only redirects to the named change page.
UNNAMED_ALLOWED = ("catch_all_view", "RedirectView")

STANDARD_ADMIN_VIEWS = ("changelist", "add", "change", "delete", "history")


def _walk(
    patterns: list[URLPattern | URLResolver], namespace: str = ""
) -> Iterator[tuple[str | None, URLPattern]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _walk(pattern.url_patterns, inner)
        else:
            yield (f"{namespace}{pattern.name}" if pattern.name else None), pattern


def url_names() -> set[str]:
    return {name for name, _ in _walk(get_resolver().url_patterns) if name}


def _view_name(callback: Any) -> str:
    view_class = getattr(callback, "view_class", None)
    return view_class.__name__ if view_class else getattr(callback, "__name__", str(callback))


def unnamed_patterns() -> list[str]:
    return [
        f"{pattern.pattern} -> {_view_name(pattern.callback)}"
        for name, pattern in _walk(get_resolver().url_patterns)
        if name is None
    ]


# ---------------------------------------------------------------------------------------
# The team's world


@dataclass
class World:
    team: Team
    researcher: User
    study: Study
    objects: dict[str, Model]
    participant: Participant


def _staff(username: str, team: Team | None = None, role: str = "researcher") -> User:
    # No password: force_login needs none, and hashing one costs a third of a second.
    user = User.objects.create_user(username, is_staff=True)
    if team is not None:
        TeamMembership.objects.create(team=team, user=user, role=role)
    return user


def build_world() -> World:
    team = Team.objects.create(name=f"{MARKER.upper()} Alpha lab")
    researcher = _staff(f"{MARKER}_researcher", team)
    _staff(f"{MARKER}_analyst", team, TeamMembership.Role.ANALYST)
    study = StudyFactory.create_live(
        team=team, title=f"{MARKER.upper()} secret study", slug=f"{MARKER}-secret-slug"
    )
    Condition.objects.filter(study=study, name="real").update(label=f"{MARKER.upper()} cond")
    Question.objects.filter(study=study).update(text=f"{MARKER.upper()} question?")
    article = RealArticleFactory.create(team=team, title=f"{MARKER.upper()} secret article")
    Condition.objects.get(study=study, name="real").articles.add(article)
    participant = participant_enroll(study=study, panel=PanelIds(panel="prolific", pid="ZQXPID1"))
    gone = participant_enroll(study=study, panel=PanelIds(panel="prolific", pid="ZQXPID2"))
    participant_withdraw(participant=gone)
    trial = Trial.objects.filter(participant=participant).first()
    assert trial is not None, "enrolment made no trial"
    question = Question.objects.filter(study=study, scope=Question.Scope.PER_ARTICLE).first()
    assert question is not None
    response = Response.objects.create(
        participant=participant, trial=trial, question=question, value="ZQX free text"
    )
    score = ArticleScore.objects.create(
        article=article,
        scorer=f"{MARKER}-scorer",
        n_tokens=1,
        mean_logprob=-1.0,
        perplexity=2.0,
        rank_lt_10=0.5,
        rank_lt_100=0.7,
        rank_lt_1000=0.9,
    )
    run = GenerationRunFactory.create(team=team, name=f"{MARKER.upper()} run")
    sample = SampleFactory.create(run=run, source_article=article)
    chunk = GenerationChunk.objects.create(run=run, index=0, units=[])
    token = Token.objects.create(user=researcher)
    group = Group.objects.create(name=f"{MARKER} group")
    entry = LogEntry.objects.get_for_object(study).first()
    assert entry is not None, "the study's creation was not audited"
    # The login lockout's records name the team's researcher (and an address).
    seen = {"username": researcher.username, "ip_address": "192.0.2.7", "path_info": "/admin/"}
    attempt = AccessAttempt.objects.create(**seen, failures_since_start=1)
    access_log = AccessLog.objects.create(**seen)
    failure_log = AccessFailureLog.objects.create(**seen)
    objects: dict[str, Model] = {
        "axes.accessattempt": attempt,
        "axes.accesslog": access_log,
        "axes.accessfailurelog": failure_log,
        "auth.user": researcher,
        "auth.group": group,
        "authtoken.tokenproxy": token,
        "auditlog.logentry": entry,
        "surveys.team": team,
        "surveys.article": article,
        "surveys.condition": Condition.objects.get(study=study, name="real"),
        "surveys.study": study,
        "surveys.participant": participant,
        "surveys.trial": trial,
        "surveys.response": response,
        "surveys.withdrawallog": WithdrawalLog.objects.get(study=study),
        "surveys.articlescore": score,
        "generation.generationrun": run,
        "generation.sample": sample,
        "generation.generationchunk": chunk,
    }
    return World(team, researcher, study, objects, participant)


# ---------------------------------------------------------------------------------------
# How to fill each URL: name -> (arguments from the world, methods, kind). "list" pages
# may answer 200 to an outsider, showing the outsider's own things only.


@dataclass(frozen=True)
class Case:
    args: Callable[[World], list[Any]]
    methods: tuple[str, ...] = ("get",)
    is_list: bool = False


def _pk(label: str) -> Callable[[World], list[Any]]:
    def args(world: World) -> list[Any]:
        obj = world.objects[label]
        # DRF's token admin addresses a token by its user's id.
        return [obj.user_id if isinstance(obj, Token) else obj.pk]

    return args


def _slug(*extra: str) -> Callable[[World], list[Any]]:
    return lambda world: [world.study.slug, *extra]


def _admin_cases() -> dict[str, Case]:
    cases: dict[str, Case] = {}
    for model in admin.site._registry:
        opts = model._meta
        label = opts.label_lower
        prefix = f"admin:{opts.app_label}_{opts.model_name}"
        cases[f"{prefix}_changelist"] = Case(lambda world: [], is_list=True)
        cases[f"{prefix}_add"] = Case(lambda world: [], is_list=True)
        for view in ("change", "delete", "history"):
            methods = ("get",) if view == "history" else ("get", "post")
            cases[f"{prefix}_{view}"] = Case(_pk(label), methods)
    return cases


CUSTOM: dict[str, Case] = {
    "admin:app_list": Case(lambda world: ["surveys"], is_list=True),
    "admin:auth_user_password_change": Case(_pk("auth.user"), ("get", "post")),
    "admin:surveys_article_import": Case(lambda world: [], is_list=True),
    "admin:surveys_study_status": Case(lambda world: [world.study.pk, "closed"], ("post",)),
    "admin:surveys_study_instrument": Case(lambda world: [world.study.pk, "kreps"], ("post",)),
    "admin:surveys_study_file_export": Case(_pk("surveys.study")),
    "admin:surveys_study_file_import": Case(lambda world: [], is_list=True),
    "admin:generation_sample_review": Case(_pk("generation.sample"), ("post",)),
    "analysis:results": Case(_slug()),
    "analysis:export": Case(_slug()),
    "analysis:export_wide": Case(_slug()),
    "analysis:plot": Case(_slug(next(iter(plots.PLOTS)))),
    "analysis:preregistration": Case(_slug("html")),
    "analysis:replication": Case(_slug()),
    "surveys:preview": Case(_slug(), ("get", "post")),
    "api:study-list": Case(lambda world: [], is_list=True),
    "api:study-detail": Case(_slug()),
    "api:condition-list": Case(_slug()),
    "api:article-list": Case(_slug()),
    "api:participant-list": Case(_slug()),
    "api:response-list": Case(_slug()),
    "api:study-results": Case(_slug()),
}


def _url_cases() -> dict[str, Case]:
    return {**_admin_cases(), **CUSTOM}


# ---------------------------------------------------------------------------------------
# The outsiders


def _outsiders(world: World) -> dict[str, Client]:
    beta = Team.objects.create(name="Beta lab")
    clients: dict[str, Client] = {}
    researcher = _staff("beta_researcher", beta)
    analyst = _staff("beta_analyst", beta, TeamMembership.Role.ANALYST)
    # Model permissions, as a site might grant its researchers and analysts through a
    # group: team scoping must hold whatever Django's permissions say.
    app_perms = Permission.objects.filter(content_type__app_label__in=["surveys", "generation"])
    researcher.user_permissions.add(*app_perms)
    analyst.user_permissions.add(*app_perms.filter(codename__startswith="view_"))
    for name, user in (
        ("other team's researcher", researcher),
        ("other team's analyst", analyst),
        ("staff without a team", _staff("loner")),
    ):
        client = Client()
        client.force_login(user)
        clients[name] = client
    clients["anonymous"] = Client()
    key = Token.objects.create(user=User.objects.get(username="beta_analyst")).key
    clients["other team's API token"] = Client(HTTP_AUTHORIZATION=f"Token {key}")
    return clients


LOGIN = re.compile(r"^/admin/login/")


def _refused(status: int, location: str) -> bool:
    return status in (401, 403, 404, 405, 410) or (status == 302 and bool(LOGIN.match(location)))


def _body(response: Any) -> str:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content).decode(errors="replace")
    return response.content.decode(errors="replace")


def _snapshot(world: World) -> tuple[Any, ...]:
    study = Study.objects.get(pk=world.study.pk)
    return (
        study.status,
        study.title,
        Question.objects.filter(study=study).count(),
        Article.objects.filter(pk=world.objects["surveys.article"].pk).values_list(
            "title", flat=True
        )[0],
        Sample.objects.get(pk=world.objects["generation.sample"].pk).review,
        GenerationRun.objects.filter(pk=world.objects["generation.generationrun"].pk).exists(),
        Participant.objects.filter(study=study).count(),
        Token.objects.count(),
    )


# ---------------------------------------------------------------------------------------
# The tests


def test_every_url_is_covered(db: None) -> None:
    names = url_names()
    cases = _url_cases()
    uncovered = names - set(cases) - set(PUBLIC) - PARTICIPANT_PAGES
    assert not uncovered, (
        f"URLs that {__name__} does not know how to fill: {sorted(uncovered)}. Add each to "
        "CUSTOM with the team's arguments, or to PUBLIC with why it shows no team data."
    )
    stale = (set(cases) | set(PUBLIC) | PARTICIPANT_PAGES) - names
    assert not stale, f"Mapped URLs that no longer exist: {sorted(stale)}"
    odd = [p for p in unnamed_patterns() if not p.endswith(UNNAMED_ALLOWED)]
    assert not odd, f"Unnamed URL patterns cannot be covered: name them: {odd}"
    assert not any(hasattr(m, "get_absolute_url") for m in admin.site._registry), (
        "A registered model has get_absolute_url: add admin:view_on_site to CUSTOM"
    )
    assert not any(m.autocomplete_fields for m in admin.site._registry.values()), (
        "A ModelAdmin uses autocomplete: add admin:autocomplete to CUSTOM"
    )


@pytest.mark.django_db
@pytest.mark.parametrize("name", sorted(_url_cases()))
def test_outsiders_never_get_a_teams_data(name: str) -> None:
    world = build_world()
    case = _url_cases()[name]
    model_label = next(
        (
            m._meta.label_lower
            for m in admin.site._registry
            if name.startswith(f"admin:{m._meta.app_label}_{m._meta.model_name}_")
        ),
        None,
    )
    if model_label is not None and model_label not in world.objects and not case.is_list:
        pytest.fail(f"{model_label} is registered in the admin: add its team object to build_world")
    url = reverse(name, args=case.args(world))
    outsiders = _outsiders(world)
    before = _snapshot(world)
    secrets = [
        s
        for s in (
            world.study.title,
            world.study.slug,
            "ZQXPID1",
            "ZQXPID2",
            "ZQX free text",
            MARKER,
        )
        # A value the outsider typed into the URL may come back (e.g. "no study <slug>").
        if s.lower() not in url.lower()
    ]
    for who, client in outsiders.items():
        for method in case.methods:
            response = getattr(client, method)(url, HTTP_ACCEPT="application/json, text/html")
            body = _body(response)
            location = response.get("Location", "")
            where = f"{method.upper()} {url} as {who}: {response.status_code} {location}"
            assert response.status_code < 500, where
            if not case.is_list or method != "get":
                assert _refused(response.status_code, location), where
            leaked = [s for s in secrets if s.lower() in body.lower()]
            assert not leaked, f"{where} shows {leaked}"
            assert _snapshot(world) == before, f"{where} changed the team's data"
    # The arguments reach the team's objects: a superuser is not told "not found".
    root = Client()
    root.force_login(User.objects.create_superuser("root", password=None))
    control = root.get(url, HTTP_ACCEPT="application/json, text/html")
    _body(control)
    assert control.status_code != 404, f"{url} is a 404 even for a superuser: wrong arguments"
    assert control.status_code < 500, url
