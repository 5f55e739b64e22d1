"""Writes: enrolment and assignment, answers, completion, the study lifecycle.

Every function here that touches several rows runs in one transaction. Concurrency is
handled by locking the row that serialises the decision (the study for assignment, the
participant for answers) and, underneath, by the database constraints in models.py.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, TypedDict

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Q
from django.utils import timezone

from surveys import fraud
from surveys.exclusions import exclusion_rule_problems
from surveys.models import (
    Article,
    Condition,
    Participant,
    Question,
    Response,
    Study,
    Trial,
    WithdrawalLog,
)
from surveys.privacy import keyed_hash

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


# The attributes .annotate() adds to conditions and articles below (for WithAnnotations).
class _ArticleCount(TypedDict):
    n: int


class _Fill(TypedDict):
    filled: int


class _Exposure(TypedDict):
    exposure: int


class StudyClosedError(Exception):
    """The study does not accept participants (draft or closed)."""


class StudyFullError(Exception):
    """No condition can take a new participant: every quota is reached, or a condition
    has too few articles."""


class PanelIdRequiredError(Exception):
    """The study takes only participants who arrive with a panel id."""


# The width of the panel columns on Participant. Longer values are refused, never cut:
# two long ids cut to the same prefix would share one participation.
PANEL_VALUE_MAX = 100


@dataclass(frozen=True)
class PanelIds:
    """Identifiers a recruitment panel passes in the study link."""

    panel: str = ""
    pid: str = ""
    study_id: str = ""
    session_id: str = ""

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> PanelIds:
        """Read Prolific (PROLIFIC_PID, STUDY_ID, SESSION_ID) or MTurk
        (workerId, hitId, assignmentId) parameters; empty when there are none.

        Values are stripped of surrounding whitespace, and an id that is blank after
        that counts as no id at all (the same person with and without a stray space is
        one participant). Raises ValidationError for a value longer than the columns."""
        for fields, panel in (
            (("PROLIFIC_PID", "STUDY_ID", "SESSION_ID"), Participant.Panel.PROLIFIC),
            (("workerId", "hitId", "assignmentId"), Participant.Panel.MTURK),
        ):
            values = [str(query.get(name) or "").strip() for name in fields]
            if not values[0]:
                continue
            if any(len(value) > PANEL_VALUE_MAX for value in values):
                raise ValidationError(
                    f"The panel parameters in this link are longer than {PANEL_VALUE_MAX} "
                    "characters, which no panel sends. Please use the link from your panel."
                )
            return cls(panel=panel, pid=values[0], study_id=values[1], session_id=values[2])
        return cls()

    @property
    def pid_hash(self) -> str:
        """The keyed hash that identifies the id in the database (empty without an id)."""
        return panel_pid_hash(pid=self.pid)


def panel_pid_hash(*, pid: str) -> str:
    """The pseudonym of a panel id that lookups and the one-participation constraint use."""
    return keyed_hash(value=pid, purpose="panel")


# ---------------------------------------------------------------------------------------
# Study lifecycle


def study_design_document(*, study: Study) -> dict[str, object]:
    """Everything that defines what participants see and are asked, as plain data.

    The design and the per-condition counts are included for within-subjects designs
    only, so that between-subjects designs keep the hash they had before designs
    existed."""
    within = study.design == Study.Design.WITHIN
    return {
        **({"design": study.design} if within else {}),
        "articles_per_participant": study_articles_per_participant(study=study),
        "seed": study.seed,
        "texts": [study.consent_text, study.instructions_text, study.debrief_text],
        "conditions": [
            {
                "name": c.name,
                "reference": c.is_reference,
                "articles": sorted(c.articles.values_list("content_hash", flat=True)),
                # Only when set, so that designs without quotas keep the hash they had
                # before quotas existed.
                **({"quota": c.quota} if c.quota is not None else {}),
                **({"per_participant": c.per_participant} if within else {}),
                # Manipulations, likewise only when set.
                **({"branding": c.branding} if c.branding else {}),
                **({"disclaimer": c.disclaimer} if c.disclaimer else {}),
            }
            for c in study.conditions.order_by("name")
        ],
        # ``Question.scoring`` (how analysis scores a question) is deliberately left out:
        # adding it would change the hash of every live study, and the question inline is
        # locked once a study is live, which freezes the definition anyway.
        "questions": [
            {
                "key": q.key,
                "text": q.text,
                "kind": q.kind,
                "scope": q.scope,
                "scale": [q.scale_min, q.scale_max],
                "labels": [q.min_label, q.max_label],
                "choices": q.choices,
                "required": q.required,
                "expected": q.expected_answer,
                "position": q.position,
                **({"after_article": q.after_article} if q.after_article is not None else {}),
            }
            for q in study.questions.order_by("scope", "position", "key")
        ],
        # Exclusion rules are part of the pre-registered design; only when there are any,
        # so that studies without them keep their hash.
        **(
            {
                "exclusion_rules": [
                    [r.kind, r.threshold, r.question_key]
                    for r in study.exclusion_rules.order_by("position", "id")
                ]
            }
            if study.exclusion_rules.exists()
            else {}
        ),
        # Only when set, so that earlier designs keep their hash.
        **({"require_panel_id": True} if study.require_panel_id else {}),
        **(
            {"comprehension_attempts": study.comprehension_attempts}
            if study.questions.filter(scope=Question.Scope.COMPREHENSION).exists()
            else {}
        ),
        # Only when set, so that existing designs keep their hash (surveys.fraud).
        **({"flagged_hold_no_place": True} if study.flagged_hold_no_place else {}),
    }


def study_design_hash(*, study: Study) -> str:
    document = json.dumps(study_design_document(study=study), sort_keys=True)
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


def study_articles_per_participant(*, study: Study) -> int:
    """How many articles each participant reads: the study's setting in a between-subjects
    design, the sum of the conditions' ``per_participant`` in a within-subjects one."""
    if study.design == Study.Design.WITHIN:
        return sum(study.conditions.values_list("per_participant", flat=True))
    return study.articles_per_participant


def _within_problems(
    study: Study, conditions: Sequence[WithAnnotations[Condition, _ArticleCount]]
) -> list[str]:
    problems: list[str] = []
    for condition in conditions:
        if condition.per_participant < 1:
            problems.append(
                f'Condition "{condition.name}": set how many of its articles each participant '
                "reads (per participant, at least 1) in a within-subjects design."
            )
        elif condition.n < condition.per_participant:
            problems.append(
                f'Condition "{condition.name}" has {condition.n} article(s); each '
                f"participant reads {condition.per_participant} of them."
            )
        if condition.quota is not None:
            problems.append(
                f'Condition "{condition.name}" has a quota: quotas apply to between-subjects '
                "designs only (in a within-subjects design everyone sees every condition)."
            )
    if not problems and conditions:
        need = sum(c.per_participant for c in conditions)
        got = len(_within_assignment(conditions=conditions, exposures={}, rng=random.Random(0)))
        if got < need:
            problems.append(
                f"Each participant reads {need} articles, no two of the same story (a real "
                "article and a version generated from its lede are the same story), but the "
                f"conditions' articles allow only {got}. Add articles about other stories."
            )
    return problems


def study_validate_design(*, study: Study) -> None:
    """Raise ValidationError listing every reason the study cannot take participants."""
    problems: list[str] = []
    conditions = list(study.conditions.annotate(n=Count("articles")))
    if not conditions:
        problems.append("The study has no conditions.")
    if study.design == Study.Design.WITHIN:
        problems.extend(_within_problems(study, conditions))
    else:
        for condition in conditions:
            if condition.n < study.articles_per_participant:
                problems.append(
                    f'Condition "{condition.name}" has {condition.n} article(s); each '
                    f"participant sees {study.articles_per_participant}."
                )
    if len([c for c in conditions if c.is_reference]) != 1 and len(conditions) > 1:
        problems.append("Mark exactly one condition as the reference (e.g. the real articles).")
    if not study.questions.filter(scope=Question.Scope.PER_ARTICLE).exists():
        problems.append("The study has no questions about the articles.")
    problems.extend(_check_problems(study))
    problems.extend(exclusion_rule_problems(study=study))
    if problems:
        raise ValidationError(problems)


def _expected_problem(question: Question, label: str) -> str | None:
    """Why a check's expected answer cannot pass, or None."""
    if not question.expected_answer.strip():
        return f'{label} "{question.key}" has no expected answer.'
    offered = {
        Question.Kind.BINARY: ["yes", "no"],
        Question.Kind.CHOICE: [str(c) for c in question.choices],
    }.get(Question.Kind(question.kind))
    expected = question.expected_answer.strip().lower()
    if offered is not None and expected not in [o.strip().lower() for o in offered]:
        return (
            f'{label} "{question.key}" expects "{question.expected_answer}", which is not '
            f"one of its options ({', '.join(offered)}): nobody could pass it."
        )
    return None


def _check_problems(study: Study) -> list[str]:
    """Attention checks: a passable expected answer, placed after an article every
    participant reads. Comprehension questions: a passable expected answer, at least one
    try."""
    problems: list[str] = []
    n_articles = study_articles_per_participant(study=study)
    for check in study.questions.filter(scope=Question.Scope.ATTENTION_CHECK):
        if (problem := _expected_problem(check, "Attention check")) is not None:
            problems.append(problem)
        after = check.after_article
        if after is not None and not 1 <= after <= max(n_articles, 1):
            problems.append(
                f'Attention check "{check.key}" is asked after article {after}, but each '
                f"participant reads {n_articles}: choose a number from 1 to "
                f"{max(n_articles, 1)}, or leave it empty to ask it after the last article."
            )
    comprehension = study.questions.filter(scope=Question.Scope.COMPREHENSION)
    for question in comprehension:
        if (problem := _expected_problem(question, "Comprehension question")) is not None:
            problems.append(problem)
    if comprehension.exists() and study.comprehension_attempts < 1:
        problems.append(
            "Give participants at least one try at the comprehension questions "
            "(comprehension attempts)."
        )
    return problems


def study_assert_editable(*, study: Study) -> None:
    """Raise ValidationError when the study's design is locked (live or closed).

    Reads the status from the database, not from the instance passed in: an admin form
    opened while the study was a draft must not write after someone launched it.
    """
    status = Study.objects.filter(pk=study.pk).values_list("status", flat=True).first()
    if status in (Study.Status.LIVE, Study.Status.CLOSED):
        raise ValidationError(
            f'The study "{study.slug}" is {status}: its design (texts, conditions, questions, '
            "articles per participant, seed) is locked. Copy it into a new study to change it."
        )


def study_sync_articles_per_participant(*, study: Study) -> None:
    """In a within-subjects design, store the derived articles-per-participant count (the
    sum of the conditions' ``per_participant``) so that every reader of the field agrees.
    Does nothing for between-subjects designs or locked studies."""
    if study.design != Study.Design.WITHIN or study.is_design_locked:
        return
    total = study_articles_per_participant(study=study)
    if total != study.articles_per_participant:
        study.articles_per_participant = total
        Study.objects.filter(pk=study.pk).update(articles_per_participant=total)


@transaction.atomic
def study_set_status(*, study: Study, status: str) -> Study:
    """Move a study through draft -> pilot -> live -> closed.

    Going live freezes the design: its hash is stored, and every participation records
    the hash it ran under. A live or closed study cannot return to draft or pilot.
    """
    study = Study.objects.select_for_update().get(pk=study.pk)
    allowed = {
        Study.Status.DRAFT: {Study.Status.PILOT, Study.Status.LIVE},
        Study.Status.PILOT: {Study.Status.DRAFT, Study.Status.LIVE, Study.Status.CLOSED},
        Study.Status.LIVE: {Study.Status.CLOSED},
        Study.Status.CLOSED: set(),
    }
    if status == study.status:
        return study
    if status not in allowed[Study.Status(study.status)]:
        raise ValidationError(f"A {study.status} study cannot be set to {status}.")
    if status in (Study.Status.PILOT, Study.Status.LIVE):
        study_validate_design(study=study)
        study_sync_articles_per_participant(study=study)
    study.design_hash = study_design_hash(study=study)
    study.status = status
    now = timezone.now()
    if status == Study.Status.LIVE:
        study.launched_at = now
    if status == Study.Status.CLOSED:
        study.closed_at = now
    study.save(update_fields=["status", "design_hash", "launched_at", "closed_at"])
    return study


# ---------------------------------------------------------------------------------------
# Enrolment and assignment


def _participant_seed(study: Study, sequence: int) -> int:
    digest = hashlib.sha256(f"{study.seed}:{sequence}".encode()).digest()
    return int.from_bytes(digest[:6], "big")


def conditions_with_fill(*, study: Study) -> list[WithAnnotations[Condition, _Fill]]:
    """The study's conditions annotated with ``filled``: completed participants and those
    still holding a place (in progress within the reservation window). Test sessions
    never count."""
    holding = fraud.quota_counted(
        study=study, participants=Participant.objects.real().holding_a_place(study)
    ).values("pk")
    return list(
        study.conditions.annotate(
            filled=Count("participants", filter=Q(participants__in=holding))
        ).order_by("id")
    )


def condition_pick(*, study: Study, rng: random.Random, respect_quotas: bool = True) -> Condition:
    """The least-filled condition with room left under its quota, counting completed
    participants and those still holding a place; ties broken at random. Raises
    StudyFullError when every condition has reached its quota. Previews pass
    ``respect_quotas=False``: a researcher may try out a full study."""
    open_conditions = [
        c
        for c in conditions_with_fill(study=study)
        if not respect_quotas or c.quota is None or c.filled < c.quota
    ]
    if not open_conditions:
        raise StudyFullError(f'The study "{study.slug}" is full.')
    lowest = min(c.filled for c in open_conditions)
    return rng.choice([c for c in open_conditions if c.filled == lowest])


def study_is_full(*, study: Study) -> bool:
    """True when no condition has room for a newcomer (every quota reached)."""
    return all(
        c.quota is not None and c.filled >= c.quota for c in conditions_with_fill(study=study)
    )


def articles_pick(*, condition: Condition, k: int, rng: random.Random) -> list[Article]:
    """k articles of the condition, least-exposed first (ties at random), so that every
    article is rated about equally often; returned in a random order."""
    study = condition.study
    holding = Participant.objects.real().holding_a_place(study).filter(condition=condition)
    articles: list[WithAnnotations[Article, _Exposure]] = list(
        condition.articles.annotate(
            exposure=Count("trials", filter=Q(trials__participant__in=holding.values("pk")))
        ).order_by("id")
    )
    rng.shuffle(articles)
    articles.sort(key=lambda a: a.exposure)  # stable: shuffled order breaks ties
    chosen: list[Article] = list(articles[:k])
    rng.shuffle(chosen)
    return chosen


def _story(article: Article) -> int:
    """A story is a real article and every version generated from its lede."""
    return article.source_article_id or article.pk


def _within_assignment(
    *,
    conditions: Sequence[Condition],
    exposures: Mapping[tuple[int, int], int],
    rng: random.Random,
) -> list[tuple[Condition, Article]]:
    """Pick ``per_participant`` articles from each condition, no two of the same story,
    least-exposed first (ties at random). Returns fewer pairs than asked when no such
    pick exists.

    Solved exactly as a minimum-cost flow (source -> condition, capacity per_participant;
    condition -> story through each of its articles, cost = the article's exposure; story
    -> sink, capacity 1), because a greedy pick condition by condition can take the
    stories a later condition needs. Exposure costs dominate (see below); a random rank
    per article breaks ties, so equally exposed articles are chosen at random. Successive shortest
    paths (SPFA), one unit per path: at most a few dozen paths over a few hundred edges.
    """
    candidates = [
        (condition, article)
        for condition in conditions
        for article in condition.articles.order_by("id")
    ]
    rng.shuffle(candidates)
    need = sum(c.per_participant for c in conditions)
    # Cost of reading an article: by how much its exposure exceeds the least-exposed
    # article of its condition, r, as base**r with base > need, so that one read at r+1
    # costs more than every read of a participant at r: the assignment first keeps the
    # reads off the most-exposed articles (balance), then off the next level, and so on.
    # Exposure costs outweigh any sum of tie-breaking ranks.
    base = need + 1
    scale = len(candidates) * max(need, 1) + 1
    least = {
        condition.pk: min(
            (exposures.get((condition.pk, a.pk), 0) for _, a in candidates if _ is condition),
            default=0,
        )
        for condition in conditions
    }
    node: dict[object, int] = {"source": 0, "sink": 1}
    graph: list[list[list[int]]] = [[], []]  # edge: [to, capacity, cost, reverse index]

    def node_of(key: object) -> int:
        if key not in node:
            node[key] = len(graph)
            graph.append([])
        return node[key]

    def edge(a: int, b: int, capacity: int, cost: int) -> list[int]:
        forward = [b, capacity, cost, len(graph[b])]
        graph[a].append(forward)
        graph[b].append([a, 0, -cost, len(graph[a]) - 1])
        return forward

    for condition in conditions:
        edge(0, node_of(("condition", condition.pk)), condition.per_participant, 0)
    chosen_edges: list[tuple[list[int], Condition, Article]] = []
    for rank, (condition, article) in enumerate(candidates):
        story = node_of(("story", _story(article)))
        excess = exposures.get((condition.pk, article.pk), 0) - least[condition.pk]
        cost = base**excess * scale + rank
        chosen_edges.append(
            (edge(node_of(("condition", condition.pk)), story, 1, cost), condition, article)
        )
    for key, index in list(node.items()):
        if isinstance(key, tuple) and key[0] == "story":
            edge(index, 1, 1, 0)

    for _ in range(need):
        distance: list[float] = [float("inf")] * len(graph)
        previous: list[tuple[int, int] | None] = [None] * len(graph)
        distance[0] = 0
        queue, queued = deque([0]), [False] * len(graph)
        queued[0] = True
        while queue:
            a = queue.popleft()
            queued[a] = False
            for i, (b, capacity, cost, _) in enumerate(graph[a]):
                if capacity > 0 and distance[a] + cost < distance[b]:
                    distance[b] = distance[a] + cost
                    previous[b] = (a, i)
                    if not queued[b]:
                        queue.append(b)
                        queued[b] = True
        if previous[1] is None:
            break
        b = 1
        while b != 0:
            step = previous[b]
            assert step is not None
            a, i = step
            graph[a][i][1] -= 1
            graph[b][graph[a][i][3]][1] += 1
            b = a
    # A used condition -> story edge has no capacity left.
    return [(condition, article) for e, condition, article in chosen_edges if e[1] == 0]


def within_articles_pick(*, study: Study, rng: random.Random) -> list[tuple[Condition, Article]]:
    """For a within-subjects design: ``per_participant`` articles of every condition, no
    two of the same story, least-exposed first within each condition (exposure counts
    non-test participants holding a place, per condition the article was shown in), in
    one random order. Across participants a story therefore alternates between its real
    and its generated forms. Fewer pairs than asked when the conditions cannot supply
    them (study_validate_design reports that before launch)."""
    conditions = list(study.conditions.order_by("id"))
    holding = Participant.objects.real().holding_a_place(study).values("pk")
    exposures = {
        (condition_id, article_id): n
        for condition_id, article_id, n in Trial.objects.filter(
            condition__study=study, participant__in=holding
        )
        .values("condition_id", "article_id")
        .annotate(n=Count("pk"))
        .values_list("condition_id", "article_id", "n")
    }
    chosen = _within_assignment(conditions=conditions, exposures=exposures, rng=rng)
    # Sorted first so that the shuffle alone (the participant's seed) decides the order.
    chosen.sort(key=lambda pair: (pair[0].pk, pair[1].pk))
    rng.shuffle(chosen)
    return chosen


def participant_find(*, study: Study, panel: PanelIds) -> Participant | None:
    """The study's participation for this panel id, found by the id's keyed hash: it
    stays found after the id itself was cleared (withdrawal) or pseudonymised."""
    if not panel.pid:
        return None
    # Unordered: (study, panel id hash) is unique, so no ORDER BY to compile and run.
    rows = Participant.objects.filter(study=study, panel_pid_hash=panel.pid_hash).order_by()
    return next(iter(rows[:1]), None)


def participant_enroll(
    *,
    study: Study,
    panel: PanelIds,
    is_test: bool = False,
    user_agent: str = "",
    network_hash: str = "",
) -> Participant:
    """Create a participation after consent, or return the existing one for this panel id.

    Assignment runs with the study row locked, so concurrent arrivals are counted one
    after another and cannot overshoot a condition. The unique constraint on
    (study, panel id hash) catches a second tab or double click racing past the lookup.
    A study that requires a panel id raises PanelIdRequiredError without one (previews
    excepted). ``network_hash`` is surveys.privacy.network_hash of the request.
    """
    if not study.accepts_participants and not is_test:
        raise StudyClosedError(f'The study "{study.slug}" is not accepting participants.')
    if study.require_panel_id and not panel.pid and not is_test:
        raise PanelIdRequiredError(f'The study "{study.slug}" requires a panel id.')
    existing = participant_find(study=study, panel=panel)
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            locked = Study.objects.select_for_update().get(pk=study.pk)
            if not locked.accepts_participants and not is_test:
                # Closed (by quota, or by a researcher) while this request waited.
                raise StudyClosedError(f'The study "{study.slug}" is not accepting participants.')
            sequence = Participant.objects.filter(study=locked).count()
            seed = _participant_seed(locked, sequence)
            rng = random.Random(seed)
            condition: Condition | None
            if locked.design == Study.Design.WITHIN:
                condition = None
                pairs = within_articles_pick(study=locked, rng=rng)
                if len(pairs) < study_articles_per_participant(study=locked):
                    raise StudyFullError(
                        f'The study "{study.slug}" has too few articles of distinct stories.'
                    )
            else:
                condition = condition_pick(study=locked, rng=rng, respect_quotas=not is_test)
                articles = articles_pick(
                    condition=condition, k=locked.articles_per_participant, rng=rng
                )
                if len(articles) < locked.articles_per_participant:
                    raise StudyFullError(f'Condition "{condition.name}" has too few articles.')
                pairs = [(condition, article) for article in articles]
            now = timezone.now()
            participant = Participant.objects.create(
                study=locked,
                condition=condition,
                panel=panel.panel,
                panel_pid=panel.pid,
                panel_pid_hash=panel.pid_hash,
                panel_study_id=panel.study_id,
                panel_session_id=panel.session_id,
                is_test=is_test,
                seed=seed,
                design_hash=locked.design_hash,
                consented_at=now,
                last_seen_at=now,
                completion_code=locked.completion_code
                or Participant._meta.get_field("completion_code").get_default(),
                user_agent=user_agent[:300],
                network_hash=network_hash,
            )
            Trial.objects.bulk_create(
                Trial(participant=participant, article=article, condition=drawn_from, position=i)
                for i, (drawn_from, article) in enumerate(pairs, start=1)
            )
            return participant
    except IntegrityError:
        existing = participant_find(study=study, panel=panel)
        if existing is None:
            raise
        return existing


# ---------------------------------------------------------------------------------------
# Answers


def _multi_choice_parse(
    question: Question, raw: str | Sequence[str] | None
) -> tuple[str, float | None] | None:
    """Ticked options as a JSON list in the order the options are offered, e.g.
    ``["A","C"]``; value_numeric is how many were ticked. A string is read as such a
    JSON list (an answer stored earlier, or an API client)."""
    if isinstance(raw, str):
        text = raw.strip()
        try:
            raw = json.loads(text) if text else []
        except ValueError:
            raw = None
        if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
            raise ValidationError("Tick the options that apply.")
    chosen = {v.strip() for v in (raw or []) if v.strip()}
    if not chosen:
        if question.required:
            raise ValidationError("Please tick at least one option.")
        return None
    options = [str(c) for c in question.choices]
    if not chosen <= set(options):
        raise ValidationError("Tick only the options offered.")
    ordered = [o for o in options if o in chosen]
    return json.dumps(ordered, ensure_ascii=False, separators=(",", ":")), float(len(ordered))


def answer_parse(
    *, question: Question, raw: str | Sequence[str] | None
) -> tuple[str, float | None] | None:
    """Validate one submitted answer. Returns (value, numeric value), or None when a
    non-required question was left empty. Raises ValidationError with a message for the
    participant. Multiple-choice questions take the list of ticked options; every other
    kind takes one string (of a list, the last one, as a form would)."""
    if question.kind == Question.Kind.MULTI_CHOICE:
        return _multi_choice_parse(question, raw)
    if raw is not None and not isinstance(raw, str):
        raw = raw[-1] if raw else None
    raw = (raw or "").strip()
    if not raw:
        if question.required:
            raise ValidationError("Please answer this question.")
        return None
    if question.kind == Question.Kind.BINARY:
        if raw not in ("yes", "no"):
            raise ValidationError("Choose yes or no.")
        return raw, 1.0 if raw == "yes" else 0.0
    if question.kind == Question.Kind.LIKERT:
        # ASCII digits only: int() also reads Arabic-Indic or fullwidth digits.
        digits = raw.removeprefix("-")
        if not digits.isascii() or not digits.isdigit() or len(digits) > 6:
            raise ValidationError("Choose one of the points on the scale.")
        number = int(raw)
        assert question.scale_min is not None
        assert question.scale_max is not None
        if not question.scale_min <= number <= question.scale_max:
            raise ValidationError(
                f"Choose a value from {question.scale_min} to {question.scale_max}."
            )
        return str(number), float(number)
    if question.kind == Question.Kind.SLIDER:
        bounds = question.bounds
        assert bounds is not None
        # Whole numbers only; "50.0" or "5e1" are not what the widget sends.
        digits = raw.removeprefix("-")
        if not digits.isascii() or not digits.isdigit() or len(digits) > 6:
            raise ValidationError(f"Enter a whole number from {bounds[0]} to {bounds[1]}.")
        number = int(raw)
        if not bounds[0] <= number <= bounds[1]:
            raise ValidationError(f"Enter a whole number from {bounds[0]} to {bounds[1]}.")
        return str(number), float(number)
    if question.kind == Question.Kind.CHOICE:
        if raw not in question.choices:
            raise ValidationError("Choose one of the options.")
        return raw, None
    if len(raw) > 5000:
        raise ValidationError("Please keep your answer under 5,000 characters.")
    return raw, None


def answers_validate(
    *, questions: list[Question], data: Mapping[str, str | Sequence[str]]
) -> tuple[dict[Question, tuple[str, float | None]], dict[str, str]]:
    """Parse answers to several questions; returns (parsed, errors by question key).
    ``data`` may be a QueryDict: multiple-choice questions read every value posted."""
    parsed: dict[Question, tuple[str, float | None]] = {}
    errors: dict[str, str] = {}
    getlist = getattr(data, "getlist", None)
    for question in questions:
        raw = data.get(question.key)
        if question.kind == Question.Kind.MULTI_CHOICE and getlist is not None:
            raw = getlist(question.key)
        try:
            answer = answer_parse(question=question, raw=raw)
        except ValidationError as error:
            errors[question.key] = error.messages[0]
            continue
        if answer is not None:
            parsed[question] = answer
    return parsed, errors


def _responses_upsert(
    *,
    participant: Participant,
    trial: Trial | None,
    answers: Mapping[Question, tuple[str, float | None]],
) -> None:
    """Store ``answers`` (one row per question, updated in place when it exists) in at
    most three queries: the rows that exist, one UPDATE, one INSERT.

    Callers hold the participant's row lock (``_lock_open_participant``), which every
    writer of a participant's answers takes, so nobody inserts between the SELECT and the
    INSERT; the unique constraints still stand behind it. (``bulk_create`` with
    ``update_conflicts`` cannot be used: the constraints are partial, and Django emits no
    ``ON CONFLICT ... WHERE`` predicate for them.)"""
    if not answers:
        return
    existing = {
        row.question_id: row
        for row in Response.objects.filter(
            participant=participant, trial=trial, question__in=list(answers)
        )
        .order_by()
        .only("pk", "question_id")
    }
    now = timezone.now()
    changed, new = [], []
    for question, (value, numeric) in answers.items():
        row = existing.get(question.pk)
        if row is None:
            new.append(
                Response(
                    participant=participant,
                    trial=trial,
                    question=question,
                    value=value,
                    value_numeric=numeric,
                )
            )
        else:
            row.value, row.value_numeric, row.updated_at = value, numeric, now
            changed.append(row)
    if changed:
        Response.objects.bulk_update(changed, ["value", "value_numeric", "updated_at"])
    if new:
        Response.objects.bulk_create(new)


class ParticipationClosedError(Exception):
    """The participation is completed or withdrawn; answers can no longer change."""


def _lock_participant(participant: Participant) -> Participant:
    """The participant's row, locked (every writer of a participation takes this lock),
    re-read from the database with its study in the same query (only the participant's
    row is locked)."""
    return (
        Participant.objects.select_related("study")
        .select_for_update(of=("self",))
        .get(pk=participant.pk)
    )


def _lock_open_participant(participant: Participant) -> Participant:
    locked = _lock_participant(participant)
    if locked.status != Participant.Status.IN_PROGRESS:
        raise ParticipationClosedError("This participation has already ended.")
    return locked


# A day: anything longer is not a reading time but a clock or a forged value.
MAX_VISIBLE_MS = 24 * 60 * 60 * 1000
MAX_TAB_AWAYS = 10_000


def timing_parse(*, raw: str | None, maximum: int) -> int | None:
    """A browser-measured count as a non-negative integer, or None for anything else.
    Never raises: a missing or garbled measurement must not cost the participant their
    answers."""
    raw = (raw or "").strip()
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12:
        return None
    value = int(raw)
    return value if value <= maximum else None


@transaction.atomic
def trial_answer(
    *,
    participant: Participant,
    trial: Trial,
    answers: Mapping[Question, tuple[str, float | None]],
    visible_ms: int | None = None,
    tab_aways: int | None = None,
) -> Participant:
    """Record the answers about one trial's article. Idempotent: a refresh, a double
    click or a resubmission after going back updates the same rows, never adds rows.
    Returns the participant as stored now (read under its lock, with its study).

    ``visible_ms``/``tab_aways`` (measured in the browser) are kept from the first
    accepted answer only, like ``answered_at``: revisits do not add to the reading.
    """
    locked = _lock_open_participant(participant)
    if trial.participant_id != locked.pk:
        raise ValidationError("This article belongs to another participant.")
    _responses_upsert(participant=locked, trial=trial, answers=answers)
    now = timezone.now()
    Trial.objects.filter(pk=trial.pk, answered_at__isnull=True).update(
        answered_at=now, visible_ms=visible_ms, tab_aways=tab_aways
    )
    return _seen(locked, now)


def _seen(locked: Participant, now: datetime) -> Participant:
    """Store that the (locked) participant was seen ``now``; returns it so updated."""
    Participant.objects.filter(pk=locked.pk).update(last_seen_at=now)
    locked.last_seen_at = now
    return locked


@transaction.atomic
def attention_answer(
    *, participant: Participant, answers: Mapping[Question, tuple[str, float | None]]
) -> Participant:
    """Record answers to the once-asked questions (attention checks). Idempotent.
    Returns the participant as stored now."""
    locked = _lock_open_participant(participant)
    _responses_upsert(participant=locked, trial=None, answers=answers)
    return _seen(locked, timezone.now())


class ComprehensionOutcome(StrEnum):
    """What one submission of the comprehension page led to."""

    PASSED = "passed"
    RETRY = "retry"  # wrong, tries left: the page is shown again
    SCREENED_OUT = "screened_out"  # wrong on the last try
    STALE = "stale"  # a double submit or an outdated form: nothing was written


@transaction.atomic
def comprehension_answer(
    *,
    participant: Participant,
    answers: Mapping[Question, tuple[str, float | None]],
    attempt: int,
) -> ComprehensionOutcome:
    """Record one try at the comprehension questions (asked after the instructions).

    ``attempt`` is the try the submitted form was shown for (1 for the first): a double
    submit or a resubmission of an older form does not match the stored count and
    writes nothing, so it cannot use up a try. The stored answers are those of the
    last try; ``comprehension_tries`` counts the tries. When every answer is the
    expected one the participant goes on to the articles; wrong answers on the last of
    the study's ``comprehension_attempts`` tries screen the participant out: status
    ``screened_out`` and the study's screened-out code. A screened-out participant
    holds no place, so their condition and articles are free for the next newcomer.
    """
    from surveys.selectors import answer_matches, questions_for

    locked = _lock_open_participant(participant)
    questions = questions_for(study=locked.study, scope=Question.Scope.COMPREHENSION)
    if attempt != locked.comprehension_tries + 1 or not questions:
        return ComprehensionOutcome.STALE
    Response.objects.filter(
        participant=locked,
        trial__isnull=True,
        question__in=[q for q in questions if q not in answers],
    ).delete()
    _responses_upsert(participant=locked, trial=None, answers=answers)
    passed = all(
        q in answers and answer_matches(question=q, value=answers[q][0]) for q in questions
    )
    locked.comprehension_tries = attempt
    locked.last_seen_at = timezone.now()
    fields = ["comprehension_tries", "last_seen_at"]
    outcome = ComprehensionOutcome.PASSED if passed else ComprehensionOutcome.RETRY
    if not passed and attempt >= max(locked.study.comprehension_attempts, 1):
        locked.status = Participant.Status.SCREENED_OUT
        # Stored, like the failed-check code: later edits of the study do not change it.
        locked.completion_code = locked.study.screened_out_code
        fields += ["status", "completion_code"]
        outcome = ComprehensionOutcome.SCREENED_OUT
    locked.save(update_fields=fields)
    return outcome


@transaction.atomic
def about_answer(
    *, participant: Participant, answers: Mapping[Question, tuple[str, float | None]]
) -> Participant:
    """Record answers to the once-per-participant questions (the "about you" page) and
    that the page was submitted, even with every optional question left empty.
    Idempotent: a resubmission updates the same rows. Returns the participant as
    stored now."""
    locked = _lock_open_participant(participant)
    _responses_upsert(participant=locked, trial=None, answers=answers)
    now = timezone.now()
    if locked.about_submitted_at is None:
        Participant.objects.filter(pk=locked.pk).update(about_submitted_at=now)
        locked.about_submitted_at = now
    return _seen(locked, now)


def trial_mark_shown(*, trial: Trial) -> None:
    """First time the article was shown (server side); later views do not move it."""
    now = timezone.now()
    if trial.first_shown_at is None:
        # Skipped when the loaded trial was already shown: the filter would match nothing.
        Trial.objects.filter(pk=trial.pk, first_shown_at__isnull=True).update(first_shown_at=now)
    Participant.objects.filter(pk=trial.participant_id).update(last_seen_at=now)


def instructions_mark_seen(*, participant: Participant) -> None:
    now = timezone.now()
    Participant.objects.filter(pk=participant.pk, instructions_seen_at__isnull=True).update(
        instructions_seen_at=now
    )
    Participant.objects.filter(pk=participant.pk).update(last_seen_at=now)


@transaction.atomic
def participant_complete(*, participant: Participant) -> Participant:
    """Mark the participation completed once every required answer is in. Idempotent.

    A participant who failed an attention check still completes, but is given the
    study's failed-check code when one is set (so the panel can screen them). A study
    whose every condition has reached its quota closes in the same transaction.
    """
    from surveys.selectors import participant_next_step, participant_passed_checks

    locked = _lock_participant(participant)
    if locked.status == Participant.Status.COMPLETED:
        return locked
    if locked.status != Participant.Status.IN_PROGRESS:
        raise ParticipationClosedError("This participation has already ended.")
    step = participant_next_step(participant=locked)
    if step.name != "finish":
        raise ValidationError("Some questions are still unanswered.")
    now = timezone.now()
    locked.status = Participant.Status.COMPLETED
    locked.completed_at = now
    locked.last_seen_at = now
    fields = ["status", "completed_at", "last_seen_at"]
    study = locked.study
    if study.failed_check_code and not participant_passed_checks(participant=locked):
        # Stored, not derived at display time: the code the participant was given must
        # not change if the researcher edits the study's codes later.
        locked.completion_code = study.failed_check_code
        fields.append("completion_code")
    locked.save(update_fields=fields)
    if not locked.is_test:
        study_close_if_full(study=study)
    return locked


@transaction.atomic
def study_close_if_full(*, study: Study) -> bool:
    """Close a live study once every condition has a quota and each has that many
    completed (non-test) participants. Returns True when this call closed it.

    The study row is locked before counting, so of two participants completing the
    last places at once, the second to get the lock sees both completions.

    A study where some condition has no quota can never fill: it returns before taking
    the lock, so completions do not queue on the study row (the design is read from the
    per-process memo of a live study's frozen design, so this costs no query).
    """
    from surveys.selectors import study_design

    if not study_design(study=study).every_condition_has_quota:
        return False
    locked = Study.objects.select_for_update().get(pk=study.pk)
    if locked.status != Study.Status.LIVE:
        return False
    completed = fraud.quota_counted(
        study=locked, participants=Participant.objects.real().completed().filter(study=locked)
    )
    conditions = list(
        locked.conditions.annotate(
            n_completed=Count("participants", filter=Q(participants__in=completed.values("pk")))
        )
    )
    if not conditions or any(c.quota is None or c.n_completed < c.quota for c in conditions):
        return False
    study_set_status(study=locked, status=Study.Status.CLOSED)
    return True


# ---------------------------------------------------------------------------------------
# Withdrawal


@transaction.atomic
def participant_withdraw(*, participant: Participant) -> WithdrawalLog:
    """Withdraw a participant from the study, in progress or completed.

    Their responses and trials are deleted; the participant row stays, with status
    ``withdrawn``, so that enrolment counts stay honest (a withdrawn participant holds no
    place). The panel id itself is cleared, here and in the log: only its keyed hash
    stays, which keeps the same id from entering again. A WithdrawalLog keeps who withdrew, when,
    under which design, and which articles they read (for their debrief). The code
    shown from now on is the study's withdrawn code (possibly none). Idempotent: a
    second call returns the first call's log and changes nothing.
    """
    locked = (
        # Only the participant row: the condition is nullable (within-subjects), and
        # PostgreSQL cannot lock the nullable side of an outer join.
        Participant.objects.select_for_update(of=("self",))
        .select_related("study", "condition")
        .get(pk=participant.pk)
    )
    if locked.status == Participant.Status.WITHDRAWN:
        existing = WithdrawalLog.objects.filter(participant=locked).first()
        if existing is not None:
            return existing
    article_ids = list(
        Trial.objects.filter(participant=locked)
        .order_by("position")
        .values_list("article_id", flat=True)
    )
    log = WithdrawalLog.objects.create(
        study=locked.study,
        participant=locked,
        token=locked.token,
        # Empty in within-subjects designs: the trials' conditions were many.
        condition_name=locked.condition.name if locked.condition is not None else "",
        previous_status=locked.status,
        is_test=locked.is_test,
        design_hash=locked.design_hash,
        article_ids=article_ids,
        withdrawn_at=timezone.now(),
    )
    Response.objects.filter(participant=locked).delete()
    Trial.objects.filter(participant=locked).delete()
    locked.status = Participant.Status.WITHDRAWN
    locked.completion_code = locked.study.withdrawn_code
    # Nothing kept beyond what blocks re-entry (the id's hash) and the counts.
    locked.user_agent = ""
    locked.panel_pid = ""
    locked.panel_study_id = ""
    locked.panel_session_id = ""
    locked.last_seen_at = log.withdrawn_at
    locked.save(
        update_fields=[
            "status",
            "completion_code",
            "user_agent",
            "panel_pid",
            "panel_study_id",
            "panel_session_id",
            "last_seen_at",
        ]
    )
    return log


# ---------------------------------------------------------------------------------------
# Personal data


class StudyStillOpenError(Exception):
    """Panel ids are still needed: the study is not closed yet."""


@transaction.atomic
def study_pseudonymise_panel_ids(*, study: Study) -> int:
    """Replace the panel ids of a closed study's participations by their keyed hash
    (surveys.privacy, purpose "panel"), once its participants are paid.

    Each id becomes the same pseudonym everywhere, so exports and analysis group the
    same rows as before, and the one-participation constraint and participant_find
    keep working (they use the hash), so the id still cannot enter again. The panel's
    session ids (one per person and study) are cleared. Returns how many participations
    changed; a second run changes none. Raises StudyStillOpenError unless closed.
    """
    locked = Study.objects.select_for_update().get(pk=study.pk)
    if locked.status != Study.Status.CLOSED:
        raise StudyStillOpenError(
            f'The study "{study.slug}" is {locked.status}: close it (and pay its '
            "participants) before pseudonymising their panel ids."
        )
    rows = Participant.objects.filter(study=locked)
    # Rows from before the hash existed get it first (migration 0009 fills it anyway).
    for participant in rows.filter(panel_pid_hash="").exclude(panel_pid=""):
        Participant.objects.filter(pk=participant.pk).update(
            panel_pid_hash=panel_pid_hash(pid=participant.panel_pid)
        )
    pending = rows.exclude(panel_pid="").exclude(panel_pid=F("panel_pid_hash"))
    changed = pending.update(panel_pid=F("panel_pid_hash"), panel_session_id="")
    rows.exclude(panel_session_id="").update(panel_session_id="")
    WithdrawalLog.objects.filter(study=locked).exclude(panel_pid="").update(panel_pid="")
    return changed
