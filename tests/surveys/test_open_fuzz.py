"""The participant forms fuzzed with Hypothesis: consent, article ratings, about-you,
attention checks and comprehension get wrong types, huge and empty values, control
characters, invalid UTF-8, repeated and unknown fields, and thousands of fields.

Whatever arrives, the answer is never a server error (the test client re-raises any
exception a view lets through), and nothing is half-written: a page either records
every required answer it asks or none, and a refused request changes nothing.
``CREDENCE_FUZZ_EXAMPLES`` sets how many requests are tried (default 600).
"""

from __future__ import annotations

import os
import urllib.parse
from collections import Counter

import pytest
from django.db.models import Count
from django.test import Client, override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from surveys.instruments import instrument_apply
from surveys.models import Participant, Question, Response, Study
from surveys.services import study_set_status
from tests.factories import QuestionFactory, StudyFactory

pytestmark = pytest.mark.django_db

EXAMPLES = int(os.environ.get("CREDENCE_FUZZ_EXAMPLES", "600"))
GOOD = {"credible": "yes", "believable": "3", "accurate": "2", "clear": "4"}
ABOUT = {
    "age_bracket": "25-34",
    "gender": "Woman",
    "party_id": "Independent",
    "ideology": "4",
    "seen_before": "No",
    "looked_up": "no",
    "news_sources": "Television",
}
RIGHT = {
    "understood_task": "Read news articles and answer questions about each one",
    "understood_answers": "No: I give my own judgement",
}
VALID = {**GOOD, **ABOUT, **RIGHT, "attention": "Blue", "consent": "yes", "why": "ok"}
PANEL = ["PROLIFIC_PID", "STUDY_ID", "SESSION_ID", "workerId", "hitId", "assignmentId"]
EXTRA = ["visible_ms", "tab_aways", "attempt", "csrfmiddlewaretoken"]
KEYS = [*VALID, *PANEL, *EXTRA]

# Field values: what a form sends, and what it never would.
texts = st.text(alphabet=st.characters(exclude_categories=["Cs", "Cc"]), max_size=40)
controls = st.text(alphabet=st.characters(categories=["Cc"]), min_size=1, max_size=5)
huge = st.builds(
    lambda c, n: c * n,
    st.sampled_from(["x", "\u0663", "\x00", "é", " "]),
    st.integers(5_000, 60_000),
)
values = st.one_of(
    st.sampled_from(list(VALID.values())),
    st.sampled_from(["", " ", "\t", "0", "-1", "99", "1e3", "\u0663", "\uff13", "yes\x00", "[]"]),
    texts,
    st.tuples(texts, controls, texts).map("".join),
    st.integers(-(10**20), 10**20).map(str),
    st.binary(max_size=30),  # invalid UTF-8 most of the time
    huge,
)
names = st.one_of(st.sampled_from(KEYS), texts, st.binary(max_size=10))
fields = st.one_of(
    # A plausible form, some fields mangled, some repeated, some unknown.
    st.lists(st.tuples(names, values), max_size=25).map(lambda extra: list(VALID.items()) + extra),
    st.lists(st.tuples(names, values), max_size=25),
    # Thousands of fields.
    st.integers(900, 3_000).map(lambda n: [(f"f{i}", "1") for i in range(n)]),
)


def encode(pairs: list[tuple[str | bytes, str | bytes]]) -> bytes:
    return urllib.parse.urlencode(
        [(k, v if isinstance(v, bytes) else v.encode("utf-8")) for k, v in pairs]
    ).encode("ascii")


def fuzz_study() -> Study:
    study = StudyFactory.create_live(articles_per_participant=2)
    Study.objects.filter(pk=study.pk).update(status=Study.Status.DRAFT)
    study.refresh_from_db()
    instrument_apply(study=study, name="demographics")
    instrument_apply(study=study, name="comprehension")
    QuestionFactory.create(
        study=study, key="why", kind=Question.Kind.FREE_TEXT, required=False, position=9
    )
    return study_set_status(study=study, status=Study.Status.LIVE)


def at_step(study: Study, step: str) -> tuple[Participant, str]:
    """A participant whose current page is ``step``."""
    client = Client()
    response = client.post(f"/s/{study.slug}/", {"consent": "yes"})
    base = str(response["Location"])
    participant = Participant.objects.get(token=base.split("/")[2])
    posts = [("instructions/", {}), ("comprehension/", {**RIGHT, "attempt": "1"})]
    posts += [("article/1/", GOOD), ("article/2/", GOOD), ("check/", {"attention": "Blue"})]
    targets = {
        "comprehension": "comprehension/",
        "article": "article/1/",
        "check": "check/",
        "about": "about-you/",
    }
    for path, data in posts:
        if path == targets[step]:
            break
        assert client.post(base + path, data).status_code == 302, path
    return participant, base + targets[step]


def state(participant: Participant) -> tuple[object, ...]:
    row = Participant.objects.get(pk=participant.pk)
    answers = sorted(
        Response.objects.filter(participant=participant).values_list(
            "trial_id", "question__key", "value"
        ),
        key=repr,
    )
    return (row.status, row.comprehension_tries, row.about_submitted_at, tuple(answers))


def assert_whole(participant: Participant, scope: str) -> None:
    """Per page (a trial, or the once-asked questions of a scope): no answers, or every
    required one."""
    questions = list(Question.objects.filter(study=participant.study_id, scope=scope))
    required = {q.key for q in questions if q.required}
    keys = {q.key for q in questions}
    pages: dict[object, set[str]] = {}
    for trial_id, key in Response.objects.filter(participant=participant).values_list(
        "trial_id", "question__key"
    ):
        if key in keys:
            pages.setdefault(trial_id, set()).add(key)
    for answered in pages.values():
        assert required <= answered, (scope, answered)


@override_settings(CREDENCE_ENTRY_RATE="", CREDENCE_POST_RATE="")
def test_participant_forms_never_fail_and_never_half_write(capsys):
    study = fuzz_study()
    scopes = {
        "article": Question.Scope.PER_ARTICLE,
        "check": Question.Scope.ATTENTION_CHECK,
        "about": Question.Scope.PARTICIPANT,
        "comprehension": Question.Scope.COMPREHENSION,
    }
    targets = {step: at_step(study, step) for step in scopes}
    statuses: Counter[str] = Counter()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(
        target=st.sampled_from(["consent", "start-query", *scopes]),
        pairs=fields,
    )
    def post(target: str, pairs: list[tuple[str | bytes, str | bytes]]) -> None:
        body = encode(pairs)
        if target in ("consent", "start-query"):
            before = Participant.objects.count()
            client = Client()
            if target == "consent":
                response = client.post(
                    f"/s/{study.slug}/", body, content_type="application/x-www-form-urlencoded"
                )
            else:
                response = client.get(f"/s/{study.slug}/?{body.decode('ascii')}")
            after = Participant.objects.count()
            # One participation at most, and only on a redirect into it.
            assert after - before == (1 if response.status_code == 302 and after > before else 0)
            assert after - before in ((0, 1) if response.status_code == 302 else (0,))
            assert not Participant.objects.annotate(n=Count("trials")).exclude(n=2).exists()
        else:
            participant, path = targets[target]
            if Participant.objects.get(pk=participant.pk).status != "in_progress":
                # Screened out (wrong comprehension answers): fuzz a fresh one.
                targets[target] = at_step(study, target)
                participant, path = targets[target]
            before_state = state(participant)
            response = Client().post(path, body, content_type="application/x-www-form-urlencoded")
            if response.status_code != 302:
                assert state(participant) == before_state
            assert_whole(participant, scopes[target])
        assert response.status_code < 500
        statuses[f"{target} {response.status_code}"] += 1

    post()
    total = sum(statuses.values())
    with capsys.disabled():
        print(f"\nparticipant form fuzzing: {total} requests, 0 server errors: {dict(statuses)}")
    assert total >= EXAMPLES * 0.9
