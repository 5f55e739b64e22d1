"""Simulated participants who take a study through the real participant pages.

The bot reads the HTML forms (stdlib ``html.parser``), posts them like a browser, and so
exercises the whole stack: URLs, middleware (sessions, CSRF), views, services, database
constraints. It may *read* the database (to learn which condition each article was drawn from, and
the expected answers of attention and comprehension checks), but every write goes through
HTTP.

Two transports: Django's test ``Client`` in-process (the default, no server needed), or
real HTTP against a running server (``base_url``) with urllib and a cookie jar.
"""

from __future__ import annotations

import random
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from http.cookiejar import CookieJar
from typing import Any, Protocol

from django.contrib.auth import get_user_model
from django.db.models import Count, Q
from django.test import Client
from tqdm import tqdm

from surveys.models import Participant, Question, Response, Study, TeamMembership, Trial
from surveys.selectors import (
    check_pages,
    participant_passed_checks,
    study_articles_per_participant,
)

USER_AGENT = "credence-simulator/1.0"
SIMULATOR_USERNAME = "credence-simulator"


class SimulationError(Exception):
    """The simulation cannot run as asked (unknown condition, closed study, ...)."""


# ---------------------------------------------------------------------------------------
# Reading pages


@dataclass
class Form:
    action: str
    method: str
    # (name, type, value, checked) in document order; radios appear once per option.
    inputs: list[tuple[str, str, str, bool]] = field(default_factory=list)
    textareas: dict[str, str] = field(default_factory=dict)
    # Number boxes (sliders): name -> (min, max).
    numbers: dict[str, tuple[int, int]] = field(default_factory=dict)

    def hidden(self) -> dict[str, str | list[str]]:
        return {name: value for name, kind, value, _ in self.inputs if kind == "hidden"}

    def checkboxes(self) -> dict[str, list[str]]:
        """Checkbox groups: name -> the values offered, in order."""
        groups: dict[str, list[str]] = {}
        for name, kind, value, _ in self.inputs:
            if kind == "checkbox":
                groups.setdefault(name, []).append(value)
        return groups

    def options(self) -> dict[str, list[str]]:
        """Radio groups: name -> the values offered, in order."""
        groups: dict[str, list[str]] = {}
        for name, kind, value, _ in self.inputs:
            if kind == "radio":
                groups.setdefault(name, []).append(value)
        return groups


class _PageParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.step = ""
        self.position: int | None = None
        self.forms: list[Form] = []
        self.completion_code = ""
        self._in_code = False
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "main":
            self.step = a.get("data-step", "")
            if a.get("data-position"):
                self.position = int(a["data-position"])
        elif tag == "form":
            self.forms.append(Form(action=a.get("action", ""), method=a.get("method", "get")))
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1].inputs.append(
                (a["name"], a.get("type", "text"), a.get("value", ""), "checked" in a)
            )
            if a.get("type") == "number":
                self.forms[-1].numbers[a["name"]] = (int(a["min"]), int(a["max"]))
        elif tag == "textarea" and self.forms and a.get("name"):
            self._textarea = a["name"]
            self.forms[-1].textareas[a["name"]] = ""
        if "data-completion-code" in a:
            self._in_code = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None
        self._in_code = False

    def handle_data(self, data: str) -> None:
        if self._in_code:
            self.completion_code += data.strip()
        if self._textarea is not None and self.forms:
            self.forms[-1].textareas[self._textarea] += data


@dataclass
class Page:
    status: int
    url: str
    step: str
    position: int | None
    forms: list[Form]
    completion_code: str

    @classmethod
    def parse(cls, status: int, url: str, html: str) -> Page:
        parser = _PageParser()
        parser.feed(html)
        return cls(status, url, parser.step, parser.position, parser.forms, parser.completion_code)


# ---------------------------------------------------------------------------------------
# Transports


# Form data: a list for a field posted several times (ticked checkboxes).
FormData = Mapping[str, str | list[str]]


class Transport(Protocol):
    def get(self, path: str) -> Page: ...

    def post(self, path: str, data: FormData) -> Page: ...


class _ClientResponse(Protocol):
    """What ``ClientTransport`` reads of a Django test-client response."""

    @property
    def status_code(self) -> int: ...

    @property
    def request(self) -> dict[str, Any]: ...

    @property
    def content(self) -> bytes: ...


def _simulator_user(*, study: Study) -> Any:
    """The staff user that opens preview pages: an analyst of the study's team, the least
    that may preview it. It has no usable password, so nobody can sign in as it."""
    if study.team_id is None:
        raise SimulationError(
            f'Study "{study.slug}" belongs to no research team, so only superusers may '
            "preview it: put it in a team (Surveys -> Studies) to simulate test sessions."
        )
    user, created = get_user_model().objects.get_or_create(
        username=SIMULATOR_USERNAME, defaults={"is_staff": True, "is_active": True}
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    if not user.is_staff:
        raise SimulationError(f'User "{SIMULATOR_USERNAME}" exists but is not staff.')
    TeamMembership.objects.get_or_create(
        team_id=study.team_id, user=user, defaults={"role": TeamMembership.Role.ANALYST}
    )
    return user


class ClientTransport:
    """In-process: Django's test client through the full middleware stack, with CSRF
    checks on (the token comes from the form, as in a browser)."""

    def __init__(self, *, preview_of: Study | None = None) -> None:
        # One client for the whole run (a new one would rebuild the middleware chain
        # each time); reset() gives the next participant an empty cookie jar.
        self.client = Client(enforce_csrf_checks=True, HTTP_USER_AGENT=USER_AGENT)
        self.staff_user = None
        if preview_of is not None:
            self.staff_user = _simulator_user(study=preview_of)
        self.arrivals = 0
        self.reset()

    def reset(self) -> None:
        self.client.cookies.clear()
        # Each participant from an address of their own (in 198.18.0.0/15, reserved for
        # benchmarks), as panel participants are: the entry rate limit counts per network.
        self.arrivals += 1
        self.client.defaults["REMOTE_ADDR"] = (
            f"198.18.{self.arrivals // 256 % 256}.{self.arrivals % 256}"
        )
        if self.staff_user is not None:
            self.client.force_login(self.staff_user)

    def _page(self, response: _ClientResponse) -> Page:
        status = response.status_code
        path = response.request["PATH_INFO"]
        html = response.content.decode("utf-8")
        return Page.parse(status, path, html)

    def get(self, path: str) -> Page:
        return self._page(self.client.get(path, follow=True))

    def post(self, path: str, data: FormData) -> Page:
        return self._page(self.client.post(path, dict(data), follow=True))


class HttpTransport:
    """Real HTTP against a running server, with a cookie jar (session and CSRF cookies)."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(CookieJar()))
        self.opener.addheaders = [("User-Agent", USER_AGENT)]

    def _open(self, request: urllib.request.Request) -> Page:
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                body = response.read().decode("utf-8")
                return Page.parse(response.status, urllib.parse.urlsplit(response.url).path, body)
        except urllib.error.HTTPError as error:
            body = error.read().decode("utf-8", "replace")
            return Page.parse(error.code, urllib.parse.urlsplit(error.url).path, body)

    def get(self, path: str) -> Page:
        return self._open(urllib.request.Request(self.base_url + path))

    def post(self, path: str, data: FormData) -> Page:
        body = urllib.parse.urlencode(data, doseq=True).encode("ascii")
        # Django checks the Referer of HTTPS posts against the host.
        headers = {"Referer": self.base_url + path}
        return self._open(urllib.request.Request(self.base_url + path, data=body, headers=headers))


# ---------------------------------------------------------------------------------------
# The bot


@dataclass
class ConditionSummary:
    name: str
    true_rate: float
    participants: int = 0
    completed: int = 0
    credible_yes: int = 0
    credible_answers: int = 0

    @property
    def observed_rate(self) -> float | None:
        return self.credible_yes / self.credible_answers if self.credible_answers else None


@dataclass
class SimulationSummary:
    """What a run did, and what the database now holds for the simulated panel ids."""

    study: str
    n: int
    seed: int
    completed_now: int = 0
    already_completed: int = 0
    dropped_out: int = 0
    failed_attention: int = 0
    screened_out: int = 0
    errors: list[str] = field(default_factory=list)
    conditions: dict[str, ConditionSummary] = field(default_factory=dict)
    seconds: float = 0.0
    requests: int = 0

    def count(self, pid: str, outcome: str) -> None:
        """Add one participant's outcome, as ``_run_one`` returns it."""
        if outcome == "completed":
            self.completed_now += 1
        elif outcome == "already":
            self.already_completed += 1
        elif outcome == "dropped":
            self.dropped_out += 1
        elif outcome == "screened_out":
            self.screened_out += 1
        else:
            self.errors.append(f"{pid}: {outcome.removeprefix('failed:')}")

    def table(self) -> str:
        lines = [
            f"Simulated {self.n} participants in {self.study!r} (seed {self.seed}) in "
            f"{self.seconds:.1f} s, {self.requests} requests: {self.completed_now} completed now, "
            f"{self.already_completed} had already completed, {self.dropped_out} dropped out, "
            f"{self.screened_out} were screened out by the comprehension questions, "
            f"{self.failed_attention} failed the attention check, {len(self.errors)} errors.",
            f"{'condition':<20} {'true':>6} {'enrolled':>9} {'completed':>10} "
            f"{'credible':>12} {'observed':>9}",
        ]
        for c in self.conditions.values():
            observed = "-" if c.observed_rate is None else f"{c.observed_rate:.3f}"
            lines.append(
                f"{c.name:<20} {c.true_rate:>6.3f} {c.participants:>9} {c.completed:>10} "
                f"{f'{c.credible_yes}/{c.credible_answers}':>12} {observed:>9}"
            )
        lines.extend(f"error: {e}" for e in self.errors[:10])
        return "\n".join(lines)


@dataclass(frozen=True)
class _StudyFacts:
    slug: str
    credible_key: str
    expected: dict[str, str]  # attention and comprehension check key -> expected answer
    likert: dict[str, tuple[int, int]]
    rates: dict[str, float]
    total_posts: int


class _Counter:
    """Counts requests made through a transport (for the summary)."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.requests = 0

    def get(self, path: str) -> Page:
        self.requests += 1
        return self.inner.get(path)

    def post(self, path: str, data: FormData) -> Page:
        self.requests += 1
        return self.inner.post(path, data)


def simulation_pid(seed: int, i: int) -> str:
    return f"SIM-{seed}-{i}"


def _credible_key(questions: list[Question]) -> str:
    binary = [q for q in questions if q.kind == Question.Kind.BINARY]
    for question in binary:
        if question.key == "credible":
            return question.key
    if not binary:
        raise SimulationError("The study has no yes/no question about the articles to answer.")
    return binary[0].key


def _study_facts(study: Study, rates: Mapping[str, float]) -> _StudyFacts:
    names = set(study.conditions.values_list("name", flat=True))
    unknown = sorted(set(rates) - names)
    missing = sorted(names - set(rates))
    if unknown or missing:
        raise SimulationError(
            "Rates must name every condition of the study exactly once. "
            + (f"Unknown: {', '.join(unknown)}. " if unknown else "")
            + (f"Missing: {', '.join(missing)}. " if missing else "")
            + f"The conditions are: {', '.join(sorted(names)) or '(none)'}."
        )
    for name, rate in rates.items():
        if not 0.0 <= rate <= 1.0:
            raise SimulationError(f'The rate for "{name}" must be between 0 and 1, not {rate}.')
    per_article = list(study.questions.filter(scope=Question.Scope.PER_ARTICLE))
    checks = list(
        study.questions.filter(
            scope__in=[Question.Scope.ATTENTION_CHECK, Question.Scope.COMPREHENSION]
        )
    )
    about = study.questions.filter(scope=Question.Scope.PARTICIPANT).exists()
    comprehension = study.questions.filter(scope=Question.Scope.COMPREHENSION).exists()
    n_articles = study_articles_per_participant(study=study)
    return _StudyFacts(
        slug=study.slug,
        credible_key=_credible_key(per_article),
        expected={q.key: q.expected_answer for q in checks},
        likert={
            q.key: (q.scale_min, q.scale_max)
            for q in per_article
            if q.kind == Question.Kind.LIKERT
            and q.scale_min is not None
            and q.scale_max is not None
        },
        rates=dict(rates),
        # consent, instructions, the comprehension page (each try), the articles with the
        # check pages among them, the about-you page (if any), finish
        total_posts=3
        + (max(study.comprehension_attempts, 1) if comprehension else 0)
        + n_articles
        + len(check_pages(study=study, n_articles=n_articles))
        + (1 if about else 0),
    )


def _answer_other_kinds(form: Form, data: dict[str, str | list[str]], rng: random.Random) -> None:
    """Slider boxes get a number in range, checkbox groups a non-empty random subset."""
    for name, (low, high) in form.numbers.items():
        data[name] = str(rng.randint(low, high))
    for name, values in form.checkboxes().items():
        data[name] = rng.sample(values, rng.randint(1, len(values)))


def _answer_about(form: Form, rng: random.Random) -> dict[str, str | list[str]]:
    """The once-per-participant questions: any offered answer, at random."""
    data = form.hidden()
    for name, values in form.options().items():
        data[name] = rng.choice(values)
    _answer_other_kinds(form, data, rng)
    for name in form.textareas:
        data[name] = "Simulated answer."
    return data


def _answer_article(
    form: Form, facts: _StudyFacts, credible_rate: float, rng: random.Random
) -> dict[str, str | list[str]]:
    data = form.hidden()
    credible = rng.random() < credible_rate
    for name, values in form.options().items():
        if name == facts.credible_key:
            data[name] = "yes" if credible else "no"
        elif name in facts.likert:
            # Ratings lean the same way as the credibility judgement, as real ones do.
            low, high = facts.likert[name]
            centre = low + (high - low) * (0.7 if credible else 0.3)
            value = round(rng.gauss(centre, (high - low) / 4))
            data[name] = str(min(high, max(low, value)))
        else:
            data[name] = rng.choice(values)
    _answer_other_kinds(form, data, rng)
    for name in form.textareas:
        data[name] = "Simulated answer."
    return data


def _answer_checks(
    form: Form, facts: _StudyFacts, fail: bool, rng: random.Random
) -> dict[str, str | list[str]]:
    data = form.hidden()
    for name, values in form.options().items():
        expected = facts.expected.get(name, "")
        matching = [v for v in values if v.strip().lower() == expected.strip().lower()]
        wrong = [v for v in values if v not in matching]
        data[name] = rng.choice(wrong) if (fail and wrong) or not matching else matching[0]
    for name in form.textareas:
        expected = facts.expected.get(name, "")
        data[name] = f"not {expected}" if fail else expected
    return data


def _run_one(
    transport: Transport,
    *,
    facts: _StudyFacts,
    study: Study,
    pid: str,
    test: bool,
    rng: random.Random,
    dropout: float,
    fail_attention: float,
    fail_comprehension: float = 0.0,
) -> str:
    """Take one participant through the study. Returns "completed", "already",
    "dropped", "screened_out" or "failed:<reason>"; fails attention checks, or every try
    at the comprehension questions, when told to."""
    drops = rng.random() < dropout
    drop_after = rng.randint(1, facts.total_posts - 1) if drops else -1
    fails = rng.random() < fail_attention
    misunderstands = rng.random() < fail_comprehension
    query = urllib.parse.urlencode(
        {"PROLIFIC_PID": pid, "STUDY_ID": f"SIM-{study.seed}", "SESSION_ID": pid}
    )
    entry = f"/s/{facts.slug}/preview/" if test else f"/s/{facts.slug}/"
    page = transport.get(f"{entry}?{query}")
    if page.step == "debrief":
        return "already"
    if page.step == "screened-out":
        return "screened_out"
    # A participant never needs more pages than this; more means the flow is stuck.
    for posts in range(4 * facts.total_posts + 4):
        if page.status != 200:
            return f"failed:HTTP {page.status} at {page.url}"
        if posts == drop_after:
            return "dropped"
        forms = [f for f in page.forms if f.method.lower() == "post"]
        if page.step == "debrief":
            return "completed" if page.completion_code else "failed:no completion code shown"
        if page.step == "screened-out":
            return "screened_out"
        if not forms:
            return f"failed:no form on the {page.step or 'unknown'} page at {page.url}"
        form = forms[0]
        data = _page_answers(
            page,
            form,
            facts=facts,
            study=study,
            pid=pid,
            rng=rng,
            fail={"check": fails, "comprehension": misunderstands},
        )
        if isinstance(data, str):
            return data
        page = transport.post(form.action, data)
    return f"failed:stuck at {page.url}"


def _page_answers(
    page: Page,
    form: Form,
    *,
    facts: _StudyFacts,
    study: Study,
    pid: str,
    rng: random.Random,
    fail: Mapping[str, bool],
) -> dict[str, Any] | str:
    """What the participant posts on this page, or why they cannot go on ("failed:...").
    ``fail``: whether they fail the attention checks ("check") and every try at the
    comprehension questions ("comprehension")."""
    if page.step == "consent":
        return {**form.hidden(), "consent": "yes"}
    if page.step == "article":
        # The condition this article was drawn from: the participant's own in a
        # between-subjects design, varying from article to article within subjects.
        # (An article page without its position cannot be matched to a trial.)
        trial = (
            Trial.objects.filter(
                participant__study=study, participant__panel_pid=pid, position=page.position
            )
            .select_related("condition")
            .first()
            if page.position is not None
            else None
        )
        if trial is None or trial.condition is None:
            return "failed:enrolled over HTTP but the trial is not in this database"
        return _answer_article(form, facts, facts.rates[trial.condition.name], rng)
    if page.step == "about":
        return _answer_about(form, rng)
    if page.step in ("check", "comprehension"):
        return _answer_checks(form, facts, fail[page.step], rng)
    if page.step in ("instructions", "finish", "preview-confirm"):
        return form.hidden()
    return f"failed:unexpected page {page.step!r} at {page.url}"


def _tally(summary: SimulationSummary, study: Study, facts: _StudyFacts, pids: list[str]) -> None:
    """Fill the per-condition counts from the database (not from what the bot meant)."""
    participants = Participant.objects.filter(study=study, panel_pid__in=pids)
    # A participant counts in every condition they were shown an article of (one in a
    # between-subjects design, all of them within subjects).
    for row in participants.values("trials__condition__name").annotate(
        n=Count("id", distinct=True),
        done=Count("id", distinct=True, filter=Q(status=Participant.Status.COMPLETED)),
    ):
        if row["trials__condition__name"] is None:
            continue  # withdrawn: no trials left
        tally = summary.conditions[row["trials__condition__name"]]
        tally.participants, tally.completed = row["n"], row["done"]
    answers = Response.objects.filter(
        participant__in=participants.completed(),
        question__key=facts.credible_key,
        question__study=study,
    )
    for row in answers.values("trial__condition__name").annotate(
        n=Count("id"), yes=Count("id", filter=Q(value="yes"))
    ):
        tally = summary.conditions[row["trial__condition__name"]]
        tally.credible_answers, tally.credible_yes = row["n"], row["yes"]


def simulate(
    *,
    study: Study,
    n: int,
    rates: Mapping[str, float],
    seed: int = 0,
    dropout: float = 0.0,
    fail_attention: float = 0.0,
    fail_comprehension: float = 0.0,
    base_url: str | None = None,
    progress: bool = True,
    test: bool = False,
) -> SimulationSummary:
    """Drive ``n`` simulated participants through the participant pages.

    Each answers the study's yes/no credibility question "yes" with the probability its
    condition has in ``rates`` (which must name every condition), rates Likert items in
    line with that answer, passes attention checks unless in the ``fail_attention``
    fraction, answers the comprehension questions wrongly on every try (and so is
    screened out) if in the ``fail_comprehension`` fraction, and abandons the study at a
    random step if in the ``dropout`` fraction.
    Participant i has panel id ``SIM-<seed>-<i>``, so a rerun with the same seed resumes
    the same participations instead of adding new ones. ``test`` enrols flagged preview
    participants through the staff preview page (in-process transport only).
    """
    _check_arguments(
        study=study,
        n=n,
        fractions={
            "dropout": dropout,
            "fail_attention": fail_attention,
            "fail_comprehension": fail_comprehension,
        },
        base_url=base_url,
        test=test,
    )
    facts = _study_facts(study, rates)
    summary = SimulationSummary(
        study=study.slug,
        n=n,
        seed=seed,
        conditions={name: ConditionSummary(name, rate) for name, rate in sorted(rates.items())},
    )
    started = time.perf_counter()
    pids = [simulation_pid(seed, i) for i in range(n)]
    in_process = None if base_url else ClientTransport(preview_of=study if test else None)
    for i in tqdm(range(n), desc="participants", disable=not progress, file=sys.stderr):
        if in_process is not None:
            in_process.reset()
        transport = _Counter(in_process or HttpTransport(base_url or ""))
        outcome = _run_one(
            transport,
            facts=facts,
            study=study,
            pid=pids[i],
            test=test,
            rng=random.Random(f"{seed}:{i}"),
            dropout=dropout,
            fail_attention=fail_attention,
            fail_comprehension=fail_comprehension,
        )
        summary.requests += transport.requests
        summary.count(pids[i], outcome)
    summary.failed_attention = _failed_attention_count(study, pids)
    _tally(summary, study, facts, pids)
    summary.seconds = time.perf_counter() - started
    return summary


def _check_arguments(
    *, study: Study, n: int, fractions: Mapping[str, float], base_url: str | None, test: bool
) -> None:
    if n < 1:
        raise SimulationError("n must be at least 1.")
    for name, value in fractions.items():
        if not 0.0 <= value <= 1.0:
            raise SimulationError(f"{name} must be between 0 and 1, not {value}.")
    if study.status == Study.Status.CLOSED:
        raise SimulationError(f'The study "{study.slug}" is closed.')
    if not study.accepts_participants and not test:
        raise SimulationError(
            f'The study "{study.slug}" is a {study.status}; it takes participants only in pilot '
            "or live (or simulate preview participants with test=True)."
        )
    if test and base_url:
        raise SimulationError("Test participants need the in-process transport (no base_url).")


def _failed_attention_count(study: Study, pids: list[str]) -> int:
    completed = Participant.objects.for_study(study).filter(panel_pid__in=pids).completed()
    return sum(not participant_passed_checks(participant=p) for p in completed)
