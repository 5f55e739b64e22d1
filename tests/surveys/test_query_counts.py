"""Queries per participant page, pinned: a regression that brings back per-request design
reads or per-answer round trips fails here (benchmarks/participant_load.py measures the
time they cost under load).

One participant walks a live study with every kind of page (consent, instructions,
comprehension, three articles, an attention check after the first, about you, finish,
debrief) through the test client, as a browser would (CSRF on, answers parsed from each
form). The budgets count everything a request does on the default settings, the
database cache's rate-limit counter of a POST included."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from surveys.instruments import instrument_apply
from surveys.models import Question, Study
from surveys.selectors.participation import _frozen_design
from surveys.services import study_set_status
from surveys.simulation import Page
from tests.factories import (
    ConditionFactory,
    GeneratedArticleFactory,
    RealArticleFactory,
    StudyFactory,
)

# The most queries each page may take, warm (the study's frozen design already read by
# this process). The rate-limit counter of every POST on the database cache costs ~11
# of a POST's queries (Redis in production costs none).
BUDGETS = {
    ("GET", "consent"): 3,
    ("POST", "consent"): 29,
    ("GET", "instructions"): 3,
    ("POST", "instructions"): 13,
    ("GET", "comprehension"): 3,
    ("POST", "comprehension"): 24,
    ("GET", "article"): 5,
    ("POST", "article"): 23,
    ("GET", "check"): 3,
    ("POST", "check"): 21,
    ("GET", "about"): 3,
    ("POST", "about"): 22,
    ("GET", "finish"): 3,
    ("POST", "finish"): 23,
    ("GET", "debrief"): 2,
}


@pytest.fixture
def full_study(db: None) -> Study:
    study = StudyFactory.create(articles_per_participant=3)
    real = ConditionFactory.create(study=study, name="real", is_reference=True)
    generated = ConditionFactory.create(study=study, name="generated")
    for _ in range(4):
        real.articles.add(RealArticleFactory.create())
        generated.articles.add(GeneratedArticleFactory.create())
    for name in ("comprehension", "kreps", "attention", "demographics"):
        instrument_apply(study=study, name=name)
    return study_set_status(study=study, status=Study.Status.LIVE)


def _answers(page: Page, expected: dict[str, str]) -> dict[str, str | list[str]]:
    form = page.forms[0]
    data: dict[str, str | list[str]] = dict(form.hidden())
    if page.step == "consent":
        data["consent"] = "yes"
    for name, values in form.options().items():
        data[name] = expected.get(name, values[0])
    for name, (low, _high) in form.numbers.items():
        data[name] = str(low)
    for name, values in form.checkboxes().items():
        data[name] = values[:1]
    for name in form.textareas:
        data[name] = "An answer."
    return data


_panel_ids = itertools.count(1)


def _kind(page: Page) -> str:
    return {"start": "consent", "article": "article", "about_you": "about"}.get(
        page.step, page.step
    )


def _walk(
    study: Study, counted: Callable[[str, str], AbstractContextManager[object]]
) -> list[tuple[str, str]]:
    """One participant from the study link to the debrief; every request runs inside
    ``counted(method, page kind)``. Returns the (method, kind) of every request."""
    expected = dict(
        study.questions.filter(
            scope__in=[Question.Scope.ATTENTION_CHECK, Question.Scope.COMPREHENSION]
        ).values_list("key", "expected_answer")
    )
    client = Client(enforce_csrf_checks=True)
    seen: list[tuple[str, str]] = []

    def get(path: str, kind: str | None = None) -> Page:
        # The kind of a GET is the page it shows; follow redirects outside the count.
        response = client.get(path)
        while response.status_code == 302:
            path = response["Location"]
            response = client.get(path)
        page = Page.parse(response.status_code, path, response.content.decode())
        with counted("GET", _kind(page)):
            response = client.get(path)
        assert response.status_code == 200, path
        seen.append(("GET", _kind(page)))
        return page

    page = get(f"/s/{study.slug}/?PROLIFIC_PID=QC{next(_panel_ids)}")
    for _ in range(20):
        kind = _kind(page)
        with counted("POST", kind):
            response = client.post(page.forms[0].action or page.url, _answers(page, expected))
        assert response.status_code == 302, (kind, response.status_code)
        seen.append(("POST", kind))
        page = get(response["Location"])
        if page.step == "debrief":
            return seen
    raise AssertionError("the walk did not reach the debrief")


def test_every_participant_page_stays_within_its_query_budget(full_study: Study) -> None:
    # A first participant reads the frozen design into this process, as any earlier
    # request of a live study would have; the second one is counted.
    _walk(full_study, lambda _m, _k: CaptureQueriesContext(connection))
    full_study.refresh_from_db()
    counts: dict[tuple[str, str], int] = {}

    @contextmanager
    def counted(method: str, kind: str) -> Iterator[None]:
        with CaptureQueriesContext(connection) as queries:
            yield
        key = (method, kind)
        counts[key] = max(counts.get(key, 0), len(queries.captured_queries))

    _walk(full_study, counted)
    assert set(counts) == set(BUDGETS)
    over = {key: (n, BUDGETS[key]) for key, n in counts.items() if n > BUDGETS[key]}
    assert over == {}, f"(queries, budget) over budget: {over}; all counts: {counts}"


def _warm_queries(study: Study, keep: Callable[[str, str], bool]) -> list[str]:
    """A participant's walk once the design is memoised (a first walk reads it): the SQL
    of its requests that ``keep(page kind, sql)`` selects, each as "METHOD kind: sql"."""
    _walk(study, lambda _m, _k: CaptureQueriesContext(connection))
    kept: list[str] = []

    @contextmanager
    def counted(method: str, kind: str) -> Iterator[None]:
        with CaptureQueriesContext(connection) as queries:
            yield
        kept.extend(
            f"{method} {kind}: {q['sql'][:160]}"
            for q in queries.captured_queries
            if keep(kind, q["sql"])
        )

    _walk(study, counted)
    return kept


def test_a_warm_page_reads_nothing_of_the_design(full_study: Study) -> None:
    """Once the frozen design is memoised, no page queries questions or conditions."""
    design_reads = _warm_queries(
        full_study,
        lambda _kind, sql: (
            sql.startswith("SELECT")
            and ('FROM "surveys_question"' in sql or 'FROM "surveys_condition"' in sql)
        ),
    )
    # The consent page reads the conditions with their fill (is the study full? which
    # condition is the emptiest?): that is the balance, not the design.
    assert [r for r in design_reads if " consent:" not in r] == []


def test_participant_reads_do_not_join_for_the_default_ordering(full_study: Study) -> None:
    """Response's default ordering (participant, trial, question, each by its own
    ordering) joins four tables; the pages' reads of answers and trials ask for no
    ordering they do not need."""
    joined = _warm_queries(
        full_study,
        lambda _kind, sql: (
            sql.startswith("SELECT")
            and ('FROM "surveys_response"' in sql or 'FROM "surveys_trial"' in sql)
            and 'JOIN "surveys_study"' in sql
        ),
    )
    assert joined == []


def test_the_memo_is_hit_not_rebuilt(full_study: Study) -> None:
    _frozen_design.cache_clear()
    _walk(full_study, lambda _m, _k: CaptureQueriesContext(connection))
    info = _frozen_design.cache_info()
    assert info.misses == 1
    assert info.hits > 10


def test_participant_pages_do_not_read_the_session(full_study: Study) -> None:
    """Only the study link uses the session (to remember the participation): the pages
    under the participant's token never read it, the audit log's middleware included
    (it loads the user only when it writes an entry)."""
    reads = _warm_queries(
        full_study, lambda kind, sql: '"django_session"' in sql and kind != "consent"
    )
    assert reads == []
