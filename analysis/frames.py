"""The one place where querysets become DataFrames (or flat rows for exports).

Everything is read with ``values_list`` and a server-side ``iterator`` so that a study with
a million ratings is read in chunks of plain tuples, never as a million model instances.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from django.db.models import CharField, Count, QuerySet
from django.db.models.functions import Cast

from surveys.exclusions import participant_exclusions, study_exclusion_rules
from surveys.fraud import participation_signals
from surveys.models import (
    Article,
    ArticleScore,
    Condition,
    Participant,
    Question,
    Response,
    Study,
    Trial,
)

CHUNK_SIZE = 5000

# Output column -> ORM lookup from Response. Order is the column order of the long frame
# and of the CSV export.
RESPONSE_FIELDS: dict[str, str] = {
    "response_id": "pk",
    "participant_id": "participant_id",
    "participant_token": "participant__token",
    "panel_pid": "participant__panel_pid",
    # The condition the article was drawn from: in within-subjects designs a participant
    # rates articles of several conditions (Trial.condition is filled for both designs).
    "condition": "trial__condition__name",
    "is_test": "participant__is_test",
    "participant_status": "participant__status",
    "article_id": "trial__article_id",
    "article_origin": "trial__article__origin",
    "source_article_id": "trial__article__source_article_id",
    "model_name": "trial__article__model_name",
    "outlet": "trial__article__outlet",
    "url": "trial__article__url",
    "license": "trial__article__license",
    "trial_position": "trial__position",
    "question_key": "question__key",
    "question_kind": "question__kind",
    "value": "value",
    "value_numeric": "value_numeric",
    "first_shown_at": "trial__first_shown_at",
    "answered_at": "trial__answered_at",
    "created_at": "created_at",
    "updated_at": "updated_at",
}
RESPONSE_COLUMNS: list[str] = list(RESPONSE_FIELDS)
DATETIME_COLUMNS = ["first_shown_at", "answered_at", "created_at", "updated_at"]
# Read as text and converted a whole column at a time: Django's per-value converters
# (datetimes and UUIDs on SQLite) cost more than the query itself at 10^5+ rows.
_AS_TEXT = {"participant_token", "is_test", *DATETIME_COLUMNS, "consented_at", "completed_at"}


def _raw_fields(fields: dict[str, str]) -> list[str | Cast]:
    """Lookups for ``values_list``, with the columns that have per-value converters cast
    to text so the database hands over plain strings, converted later a column at a
    time. (Any converter at all makes Django walk every row in Python.)"""
    return [
        Cast(lookup, output_field=CharField()) if column in _AS_TEXT else lookup
        for column, lookup in fields.items()
    ]


def _bool_from_text(column: pd.Series) -> pd.Series:
    """Booleans cast to text: "1"/"0" on SQLite, "true"/"false" on PostgreSQL."""
    return column.astype(str).str.lower().isin(["1", "true", "t"])


def _uuid_text(column: pd.Series) -> pd.Series:
    """Canonical dashed UUIDs whether the database stored them as 32 hex digits (SQLite)
    or as a uuid type (PostgreSQL, already dashed)."""
    text = column.astype(str).str.replace("-", "", regex=False).str.lower()
    return (
        text.str.slice(0, 8)
        + "-"
        + text.str.slice(8, 12)
        + "-"
        + text.str.slice(12, 16)
        + "-"
        + text.str.slice(16, 20)
        + "-"
        + text.str.slice(20, 32)
    )


def _typed_responses(frame: pd.DataFrame) -> pd.DataFrame:
    present = set(frame.columns)
    if "participant_token" in present:
        frame["participant_token"] = _uuid_text(frame["participant_token"])
    for column in DATETIME_COLUMNS:
        if column in present:
            frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    # Nullable integer: real articles have no source article.
    if "source_article_id" in present:
        frame["source_article_id"] = frame["source_article_id"].astype("Int64")
    if "value_numeric" in present:
        frame["value_numeric"] = frame["value_numeric"].astype(float)
    if "is_test" in present:
        frame["is_test"] = _bool_from_text(frame["is_test"])
    return frame


def _response_fields(columns: list[str] | None) -> dict[str, str]:
    if columns is None:
        return RESPONSE_FIELDS
    unknown = [column for column in columns if column not in RESPONSE_FIELDS]
    if unknown:
        raise ValueError(f"unknown response column(s): {', '.join(unknown)}")
    return {column: lookup for column, lookup in RESPONSE_FIELDS.items() if column in columns}


# The tables a long-frame row is assembled from, read one table at a time.
_RESPONSE_TABLE = {
    "response_id": "pk",
    "participant_id": "participant_id",
    "trial_id": "trial_id",
    "question_id": "question_id",
    "value": "value",
    "value_numeric": "value_numeric",
    "created_at": "created_at",
    "updated_at": "updated_at",
}
_TRIAL_TABLE = {
    "trial_id": "pk",
    "article_id": "article_id",
    "condition_id": "condition_id",
    "trial_position": "position",
    "first_shown_at": "first_shown_at",
    "answered_at": "answered_at",
}
_PARTICIPANT_TABLE = {
    "participant_id": "pk",
    "participant_token": "token",
    "panel_pid": "panel_pid",
    "is_test": "is_test",
    "participant_status": "status",
}
_ARTICLE_TABLE = {
    "article_id": "pk",
    "article_origin": "origin",
    "source_article_id": "source_article_id",
    "model_name": "model_name",
    "outlet": "outlet",
    "url": "url",
    "license": "license",
}
_QUESTION_TABLE = {
    "question_id": "pk",
    "question_key": "key",
    "question_kind": "kind",
    "question_position": "position",
}
# Always read, whatever columns were asked for: the join keys and the sort keys.
_KEYS = {"participant_id", "trial_id", "question_id", "article_id", "condition_id"}
_SORT = ["participant_id", "trial_position", "question_position", "question_id"]


def _table(queryset: QuerySet[Any], fields: dict[str, str], wanted: set[str]) -> pd.DataFrame:
    """The ``wanted`` columns of one table (plus its keys) as a frame: one query without
    joins and without ORDER BY (models' default orderings would join other tables in).
    Read whole, without a server-side cursor: the callers ask for one page of
    participants, so the rows are few and bounded."""
    chosen = {
        column: lookup
        for column, lookup in fields.items()
        if column in wanted or column in _KEYS or column in _SORT
    }
    rows = list(queryset.order_by().values_list(*_raw_fields(chosen)))
    return pd.DataFrame.from_records(rows, columns=list(chosen))


class _StudyTables:
    """The small per-study tables of the long frame (questions, condition names, and the
    articles shown so far), read once per export and reused by every page."""

    def __init__(self, study: Study, wanted: set[str]) -> None:
        self.wanted = wanted
        self.questions = _table(
            Question.objects.filter(study=study), _QUESTION_TABLE, wanted | {"question_position"}
        )
        self.condition_names = dict(
            Condition.objects.filter(study=study).order_by().values_list("pk", "name")
        )
        self._articles: list[pd.DataFrame] = []
        self._article_ids: set[int] = set()

    def articles(self, ids: set[int]) -> pd.DataFrame:
        missing = ids - self._article_ids
        if missing:
            self._articles.append(
                _table(Article.objects.filter(pk__in=sorted(missing)), _ARTICLE_TABLE, self.wanted)
            )
            self._article_ids |= missing
            if len(self._articles) > 1:
                self._articles = [pd.concat(self._articles, ignore_index=True)]
        return self._articles[0]


def _responses_page(ids: list[int], tables: _StudyTables) -> pd.DataFrame:
    """The long rows of these participants, in the long frame's order, with the columns
    of ``tables.wanted``: three indexed single-table reads (answers, trials, people by
    participant id) joined in pandas with the study's questions and articles."""
    wanted = tables.wanted
    answers = _table(
        Response.objects.filter(participant_id__in=ids, trial__isnull=False),
        _RESPONSE_TABLE,
        wanted,
    )
    if answers.empty:
        return answers
    trials = _table(Trial.objects.filter(participant_id__in=ids), _TRIAL_TABLE, wanted)
    people = _table(Participant.objects.filter(pk__in=ids), _PARTICIPANT_TABLE, wanted)
    rows = (
        answers.merge(trials, on="trial_id", how="inner", suffixes=("", "_trial"))
        .merge(people, on="participant_id", how="inner")
        .merge(tables.questions, on="question_id", how="inner")
    )
    rows = rows.merge(
        tables.articles(set(rows["article_id"].tolist())), on="article_id", how="inner"
    )
    if "condition" in wanted:
        rows["condition"] = _names_of(rows["condition_id"], tables.condition_names)
    return rows.sort_values(_SORT, kind="stable", ignore_index=True)


def _names_of(ids: pd.Series, names: dict[int, str]) -> pd.Series:
    """Condition ids (None or NaN where a row has none) as names (None there)."""
    return pd.Series(
        [None if pd.isna(pk) else names.get(int(pk)) for pk in ids], index=ids.index, dtype=object
    )


def participant_id_pages(
    *,
    study: Study,
    include_test: bool = False,
    chunk_size: int = CHUNK_SIZE,
    id_range: tuple[int, int] | None = None,
) -> Iterator[list[int]]:
    """The study's participant ids (test sessions only with ``include_test``; only those
    in the closed interval ``id_range`` when given), ascending, in lists of at most
    ``chunk_size``. Keyset pagination (``id > last ... LIMIT n``): each page is one
    bounded query on the participants table, however deep into the study it is."""
    queryset = Participant.objects.filter(study=study)
    if not include_test:
        queryset = queryset.filter(is_test=False)
    if id_range is not None:
        queryset = queryset.filter(pk__range=id_range)
    last = 0
    while ids := list(
        queryset.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:chunk_size]
    ):
        yield ids
        last = ids[-1]


def _rows_per_participant(study: Study) -> int:
    """About how many long rows one participation has: articles times the questions
    asked about each (a page of participants is sized from it)."""
    per_article = study.questions.filter(scope=Question.Scope.PER_ARTICLE).count()
    return max(1, int(study.articles_per_participant or 1) * max(1, per_article))


def responses_chunks(
    *,
    study: Study,
    include_test: bool = False,
    chunk_size: int = CHUNK_SIZE,
    id_range: tuple[int, int] | None = None,
    columns: list[str] | None = None,
) -> Iterator[pd.DataFrame]:
    """:func:`responses_frame` in pieces of ``chunk_size`` rows (the last may be shorter),
    read from the database as they are needed (exports stream these; nothing holds the
    whole study). ``id_range``: only the participants whose id lies in this closed
    interval. ``columns``: only these of ``RESPONSE_COLUMNS`` (in that order); default all.

    The study is walked a page of participants at a time (:func:`participant_id_pages`),
    and each page is read with single-table queries on indexed columns (participant id,
    primary keys) and joined in pandas. A join of five tables sorted by the database
    has a plan that depends on the planner's statistics: after a bulk load, one such
    query ran for a quarter of an hour instead of seconds. These queries have only one
    sensible plan, and their cost grows with the rows read, nothing else."""
    fields = _response_fields(columns)
    wanted = set(fields)
    tables = _StudyTables(study, wanted)
    per_page = max(1, chunk_size // _rows_per_participant(study))
    pending: list[pd.DataFrame] = []
    held = 0
    pages = participant_id_pages(
        study=study, include_test=include_test, chunk_size=per_page, id_range=id_range
    )
    for ids in pages:
        page = _responses_page(ids, tables)
        if page.empty:
            continue
        pending.append(page[list(fields)])
        held += len(page)
        while held >= chunk_size:
            joined = pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0]
            yield _typed_responses(joined.iloc[:chunk_size].reset_index(drop=True))
            rest = joined.iloc[chunk_size:]
            pending, held = ([rest], len(rest)) if len(rest) else ([], 0)
    if held:
        joined = pd.concat(pending, ignore_index=True) if len(pending) > 1 else pending[0]
        yield _typed_responses(joined.reset_index(drop=True))


def responses_frame(
    *,
    study: Study,
    include_test: bool = False,
    id_range: tuple[int, int] | None = None,
    columns: list[str] | None = None,
) -> pd.DataFrame:
    """Long frame: one row per response about an article (attention checks, which belong
    to no article, are in :func:`participants_frame`). Columns: ``RESPONSE_COLUMNS``;
    timestamps are UTC, ``participant_token`` a dashed UUID string.
    Test sessions are left out unless ``include_test``; no other exclusion is applied.
    ``id_range``: only the participants whose id lies in this closed interval.
    ``columns``: only these of ``RESPONSE_COLUMNS`` (in that order): the report reads
    ten of the 21, in half the time at 10^5 rows; default all."""
    chunks = list(
        responses_chunks(
            study=study,
            include_test=include_test,
            chunk_size=50_000,
            id_range=id_range,
            columns=columns,
        )
    )
    if not chunks:
        return _typed_responses(pd.DataFrame(columns=list(_response_fields(columns))))
    return pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]


def participant_id_ranges(
    *, study: Study, include_test: bool = False, chunk_size: int = CHUNK_SIZE
) -> Iterator[tuple[int, int]]:
    """The study's participants (test sessions only with ``include_test``) in id order,
    as closed id intervals of at most ``chunk_size`` of them: the ``id_range`` arguments
    that walk the study a piece at a time (:func:`participant_id_pages`)."""
    for ids in participant_id_pages(study=study, include_test=include_test, chunk_size=chunk_size):
        yield ids[0], ids[-1]


def responses_max_position(
    *, study: Study, include_test: bool = False, chunk_size: int = CHUNK_SIZE
) -> int:
    """The highest article position anyone answered about (0 when nobody has): the
    number of position column groups of the wide export, known before it is written.
    Read ``chunk_size`` participants at a time with single-table queries, like the rows
    (memory is bounded by one page)."""
    top = 0
    pages = participant_id_pages(study=study, include_test=include_test, chunk_size=chunk_size)
    for ids in pages:
        answered = set(
            Response.objects.filter(participant_id__in=ids, trial__isnull=False)
            .order_by()
            .values_list("trial_id", flat=True)
            .distinct()
        )
        positions = (
            position
            for pk, position in Trial.objects.filter(participant_id__in=ids)
            .order_by()
            .values_list("pk", "position")
            .iterator(chunk_size=CHUNK_SIZE)
            if pk in answered
        )
        top = max(top, *positions, 0)
    return top


PARTICIPANT_COLUMNS = [
    "participant_id",
    "participant_token",
    "panel_pid",
    "condition",
    "status",
    "is_test",
    "consented_at",
    "completed_at",
    "checks_answered",
    "checks_failed",
    "passed_checks",
    "exclusion_reason",
]
# The fraud and assisted-answering signals of surveys.fraud, one column each: flags, the
# copy and paste counts summed over the articles (empty when no answer ran JavaScript),
# and whether JavaScript ran (empty before the first article was answered).
SIGNAL_COLUMNS = [
    "duplicate_browser",
    "network_burst",
    "honeypot_filled",
    "article_copies",
    "answer_pastes",
    "javascript",
]
PARTICIPANT_COLUMNS += SIGNAL_COLUMNS


def participants_frame(*, study: Study, id_range: tuple[int, int] | None = None) -> pd.DataFrame:
    """One row per participation (test sessions included, flagged by ``is_test``);
    with ``id_range``, only those whose id lies in this closed interval.

    ``passed_checks`` follows ``surveys.selectors.participant_passed_checks``: every
    attention check the participant answered matches the question's expected answer,
    compared stripped and case-insensitively; an unanswered check does not fail (a
    completed participation has answered every required one).

    ``exclusion_reason`` is the ledger step that removes the participant, "" for the
    analysed: ``test``, ``incomplete`` (in progress or withdrawn), ``screened_out``, or
    the key of the first exclusion rule that applies (``surveys.exclusions``; e.g.
    ``attention``, ``too_fast``, ``straight_lining_believable``), in that precedence."""
    fields = {
        "participant_id": "pk",
        "participant_token": "token",
        "panel_pid": "panel_pid",
        "condition": "condition_id",
        "status": "status",
        "is_test": "is_test",
        "consented_at": "consented_at",
        "completed_at": "completed_at",
    }
    # Exports walk a study in id ranges (participant_id_ranges) to keep memory bounded.
    people_range = {} if id_range is None else {"pk__range": id_range}
    checks_range = {} if id_range is None else {"participant__pk__range": id_range}
    people = pd.DataFrame.from_records(
        Participant.objects.filter(study=study, **people_range)
        .order_by("pk")
        .values_list(*_raw_fields(fields))
        .iterator(chunk_size=CHUNK_SIZE),
        columns=list(fields),
    )
    # Names looked up here rather than joined in: every export query reads one table.
    names = dict(Condition.objects.filter(study=study).order_by().values_list("pk", "name"))
    people["condition"] = _names_of(people["condition"], names)
    people["participant_token"] = _uuid_text(people["participant_token"])
    people["is_test"] = _bool_from_text(people["is_test"])
    for column in ("consented_at", "completed_at"):
        people[column] = pd.to_datetime(people[column], utc=True, format="ISO8601")

    # The study's own attention checks select its answers: one table, no join.
    expected = dict(
        study.questions.filter(scope=Question.Scope.ATTENTION_CHECK)
        .order_by()
        .values_list("pk", "expected_answer")
    )
    checks = pd.DataFrame.from_records(
        Response.objects.filter(trial__isnull=True, question_id__in=list(expected), **checks_range)
        .order_by()
        .values_list("participant_id", "value", "question_id")
        .iterator(chunk_size=CHUNK_SIZE),
        columns=["participant_id", "value", "question_id"],
    )
    checks["expected"] = checks["question_id"].map(expected)
    failed = (
        checks["value"].astype(str).str.strip().str.lower()
        != checks["expected"].astype(str).str.strip().str.lower()
    )
    tally = (
        checks.assign(failed=failed)
        .groupby("participant_id")["failed"]
        .agg(checks_answered="size", checks_failed="sum")
    )
    people = people.merge(tally, how="left", left_on="participant_id", right_index=True)
    people["checks_answered"] = people["checks_answered"].fillna(0).astype(int)
    people["checks_failed"] = people["checks_failed"].fillna(0).astype(int)
    people["passed_checks"] = people["checks_failed"] == 0
    judged = None if id_range is None else Participant.objects.filter(pk__range=id_range)
    people["exclusion_reason"] = _exclusion_reasons(people, study=study, judged=judged)
    _add_signals(people, study=study, judged=judged)
    return people[PARTICIPANT_COLUMNS]


def _add_signals(
    people: pd.DataFrame, *, study: Study, judged: QuerySet[Participant] | None
) -> None:
    """The SIGNAL_COLUMNS, from ``surveys.fraud.participation_signals``."""
    signals = participation_signals(study=study, participants=judged)
    rows = [signals.get(int(pid)) for pid in people["participant_id"]]
    people["duplicate_browser"] = pd.Series(
        [bool(s and s.duplicate_browser) for s in rows], index=people.index, dtype=bool
    )
    people["network_burst"] = pd.Series(
        [bool(s and s.network_burst) for s in rows], index=people.index, dtype=bool
    )
    people["honeypot_filled"] = pd.Series(
        [bool(s and s.honeypot) for s in rows], index=people.index, dtype=bool
    )
    people["article_copies"] = pd.Series(
        [s.copies if s else None for s in rows], index=people.index, dtype="Int64"
    )
    people["answer_pastes"] = pd.Series(
        [s.pastes if s else None for s in rows], index=people.index, dtype="Int64"
    )
    people["javascript"] = pd.Series(
        [s.javascript if s else None for s in rows], index=people.index, dtype="boolean"
    )


def _exclusion_reasons(
    people: pd.DataFrame, *, study: Study, judged: QuerySet[Participant] | None
) -> pd.Series:
    """The first ledger step that removes each participant ("" when none does).
    ``people`` has participant_id, status and is_test; ``judged`` narrows the rules'
    queries to those participants (None: the whole study)."""
    by_rule = {
        pid: applied.key
        for pid, applied in participant_exclusions(study=study, participants=judged).items()
    }
    reason = pd.Series(
        [by_rule.get(pid, "") for pid in people["participant_id"]], index=people.index, dtype=object
    )
    status = people["status"]
    # Lowest precedence first: later assignments win.
    reason[status == Participant.Status.SCREENED_OUT] = "screened_out"
    reason[status.isin([Participant.Status.IN_PROGRESS, Participant.Status.WITHDRAWN])] = (
        "incomplete"
    )
    reason[people["is_test"]] = "test"
    return reason


def participant_exclusion_reasons(
    *, study: Study, participants: Sequence[Participant]
) -> dict[int, str]:
    """participant id -> ``exclusion_reason`` (as in :func:`participants_frame`) for a few
    participants, e.g. one page of the API."""
    people = pd.DataFrame(
        {
            "participant_id": [p.pk for p in participants],
            "status": [p.status for p in participants],
            "is_test": pd.Series([p.is_test for p in participants], dtype=bool),
        }
    )
    judged = Participant.objects.filter(pk__in=people["participant_id"].tolist())
    reasons = _exclusion_reasons(people, study=study, judged=judged)
    return dict(zip(people["participant_id"].tolist(), reasons.tolist(), strict=True))


@dataclass(frozen=True)
class LedgerStep:
    """One line of the exclusion ledger: how many were removed at this step and how many
    remain after it."""

    key: str
    label: str
    excluded: int
    remaining: int


@dataclass(frozen=True)
class RuleStep:
    """One exclusion rule as the ledger shows it: the ``exclusion_reason`` it gives and
    what it removes, in words."""

    key: str
    label: str


# The steps before any rule, always in the ledger (keys are exclusion_reason values).
FIXED_STEPS = [
    RuleStep("test", "Test / preview sessions excluded"),
    RuleStep("incomplete", "Incomplete (in progress or withdrawn) excluded"),
    RuleStep("screened_out", "Screened out by the comprehension questions, excluded"),
]


def exclusion_rule_steps(*, study: Study) -> list[RuleStep]:
    """The study's exclusion rules in the order they apply (``surveys.exclusions``),
    as the ledger shows them."""
    return [RuleStep(rule.key, rule.label) for rule in study_exclusion_rules(study=study)]


def exclusion_reason_labels(*, study: Study) -> dict[str, str]:
    """Every value ``exclusion_reason`` can take in this study -> what it means (for
    codebooks and legends); "" is the analysed."""
    steps = [*FIXED_STEPS, *exclusion_rule_steps(study=study)]
    return {"": "analysed", **{step.key: step.label for step in steps}}


def analysed_mask(participants: pd.DataFrame) -> pd.Series:
    """Participants who count in the analysis: not a test session, completed, and not
    removed by any exclusion rule. Input: a :func:`participants_frame`."""
    return (
        ~participants["is_test"]
        & (participants["status"] == Participant.Status.COMPLETED)
        & (participants["exclusion_reason"] == "")
    )


def exclusion_ledger(
    participants: pd.DataFrame, *, rules: Sequence[RuleStep] = ()
) -> list[LedgerStep]:
    """The exclusions in the order they are applied, from everyone recruited to the
    participants analysed: test sessions, incomplete, screened out, then one step per
    exclusion rule (``rules``: :func:`exclusion_rule_steps` of the study), each counting
    the participants whose ``exclusion_reason`` is its key. Input: a
    :func:`participants_frame`. The final count equals ``analysed_mask(participants).sum()``;
    a rule key in the frame that ``rules`` does not list raises ValueError (the ledger
    would not add up)."""
    reasons = participants["exclusion_reason"]
    unknown = set(reasons) - {"", *(step.key for step in [*FIXED_STEPS, *rules])}
    if unknown:
        raise ValueError(
            f"Exclusion reasons without a ledger step: {', '.join(sorted(unknown))}. "
            "Pass the study's exclusion_rule_steps as rules."
        )
    remaining = len(participants)
    ledger = [LedgerStep("recruited", "Recruited (all participations)", 0, remaining)]
    for step in FIXED_STEPS:
        excluded = int((reasons == step.key).sum())
        remaining -= excluded
        ledger.append(LedgerStep(step.key, step.label, excluded, remaining))
    for step in rules:
        excluded = int((reasons == step.key).sum())
        remaining -= excluded
        ledger.append(LedgerStep(step.key, f"{step.label}, excluded", excluded, remaining))
    ledger.append(LedgerStep("analysed", "Analysed", 0, remaining))
    return ledger


MANIFEST_COLUMNS = [
    "article_id",
    "origin",
    "title",
    "outlet",
    "url",
    "published",
    "license",
    "attribution",
    "source_article_id",
    "source_article_title",
    "source_article_url",
    "model_name",
    "conditions",
    "times_shown",
    "sample_id",
    "sample_index",
    "sample_seed",
    "sample_new_tokens",
    "sample_review",
    "prompt",
    "run_id",
    "run_model_name",
    "run_prompt_kind",
    "run_max_new_tokens",
    "run_top_k",
    "run_top_p",
    "run_temperature",
    "run_seed",
    "sample_settings",
    "run_model_identity",
]
_MANIFEST_INTEGERS = [
    "source_article_id",
    "sample_id",
    "sample_index",
    "sample_seed",
    "sample_new_tokens",
    "run_id",
    "run_max_new_tokens",
    "run_top_k",
    "run_seed",
]
# Filled from a generation sample when one is linked; analysis never imports generation,
# so these are read by attribute name (see _sample_provenance).
_SAMPLE_ATTRIBUTES = {
    "sample_id": "pk",
    "sample_index": "sample_index",
    "sample_seed": "seed",
    "sample_new_tokens": "new_tokens",
    "sample_review": "review",
    "prompt": "prompt",
}
_RUN_ATTRIBUTES = {
    "run_id": "pk",
    "run_model_name": "model_name",
    "run_prompt_kind": "prompt_kind",
    "run_max_new_tokens": "max_new_tokens",
    "run_top_k": "top_k",
    "run_top_p": "top_p",
    "run_temperature": "temperature",
    "run_seed": "seed",
}


def _sample_provenance(article: Article) -> dict[str, object]:
    """The generation record behind a machine-written article, read defensively: the
    reverse accessor ``article.sample`` exists only when the generation app is installed,
    and raises (an AttributeError subclass) when no sample is linked."""
    empty: dict[str, object] = dict.fromkeys(
        [*_SAMPLE_ATTRIBUTES, *_RUN_ATTRIBUTES, "sample_settings", "run_model_identity"]
    )
    sample = getattr(article, "sample", None)
    if sample is None:
        return empty
    row = {column: getattr(sample, name, None) for column, name in _SAMPLE_ATTRIBUTES.items()}
    row["sample_settings"] = json.dumps(getattr(sample, "settings", None), sort_keys=True)
    run = getattr(sample, "run", None)
    if run is not None:
        row.update({column: getattr(run, name, None) for column, name in _RUN_ATTRIBUTES.items()})
        row["run_model_identity"] = json.dumps(getattr(run, "model_identity", None), sort_keys=True)
    return {**empty, **row}


def articles_manifest_frame(*, study: Study) -> pd.DataFrame:
    """Every article the study uses (in a condition's pool, or shown in a trial, test
    sessions included) with its full provenance: origin, outlet, URL, license and
    attribution, the real article a generated one was prompted with, the model, and -
    when a generation sample is linked - the sample and its run's decoding settings.
    ``conditions`` lists the condition names separated by ";"; ``times_shown`` counts
    trials. One row per article, by id."""
    in_pool = Condition.articles.through.objects.filter(condition__study=study)
    pool_names = pd.DataFrame.from_records(
        in_pool.values_list("article_id", "condition__name").order_by("condition__name"),
        columns=["article_id", "condition"],
    )
    shown = (
        Trial.objects.filter(participant__study=study)
        .values("article_id")
        .annotate(times=Count("id"))
        .values_list("article_id", "times")
    )
    times_shown = dict(shown)
    ids = set(pool_names["article_id"]) | set(times_shown)
    articles = Article.objects.filter(pk__in=ids).select_related("source_article").order_by("pk")
    if any(rel.name == "sample" for rel in Article._meta.related_objects):
        # One query instead of one per article when generation is installed.
        articles = articles.select_related("sample__run")
    conditions = pool_names.groupby("article_id")["condition"].agg(lambda c: ";".join(c))
    rows = []
    for article in articles.iterator(chunk_size=CHUNK_SIZE):
        source = article.source_article
        rows.append(
            {
                "article_id": article.pk,
                "origin": article.origin,
                "title": article.title,
                "outlet": article.outlet,
                "url": article.url,
                "published": article.published.isoformat() if article.published else "",
                "license": article.license,
                "attribution": article.attribution,
                "source_article_id": source.pk if source else None,
                "source_article_title": source.title if source else "",
                "source_article_url": source.url if source else "",
                "model_name": article.model_name,
                "conditions": conditions.get(article.pk, ""),
                "times_shown": times_shown.get(article.pk, 0),
                **_sample_provenance(article),
            }
        )
    frame = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    # Nullable integers: real articles have no source, sample or run.
    for column in _MANIFEST_INTEGERS:
        frame[column] = frame[column].astype("Int64")
    return frame


SCORE_METRICS: list[str] = list(ArticleScore.METRICS)
ARTICLE_SCORE_COLUMNS = [
    "article_id",
    "article_origin",
    "title",
    "condition",
    "scorer",
    "n_tokens",
    *SCORE_METRICS,
]


def _article_conditions(*, study: Study) -> dict[int, str]:
    """Article id -> the names of the study's conditions it belongs to (its pool, or the
    condition of a trial that showed it), sorted and joined with ";"."""
    pairs = set(
        Condition.articles.through.objects.filter(condition__study=study).values_list(
            "article_id", "condition__name"
        )
    )
    pairs |= set(
        Trial.objects.filter(participant__study=study, condition__isnull=False)
        .values_list("article_id", "condition__name")
        # Without order_by() the model's default ordering joins in and DISTINCT keeps
        # every trial: 2 s instead of 0.4 s at 10^6 trials.
        .order_by()
        .distinct()
    )
    names: dict[int, set[str]] = {}
    for article_id, name in pairs:
        names.setdefault(article_id, set()).add(name)
    return {article_id: ";".join(sorted(found)) for article_id, found in names.items()}


def article_scores_frame(*, study: Study) -> pd.DataFrame:
    """Detector scores of the study's articles: one row per article x scorer
    (``ARTICLE_SCORE_COLUMNS``), ordered by scorer then article id. ``condition`` is the
    study condition the article belongs to (several joined with ";", sorted). Articles
    without any stored score are absent; an empty frame means nothing was scored."""
    conditions = _article_conditions(study=study)
    fields = ["article_id", "article__origin", "article__title", "scorer", "n_tokens"]
    frame = pd.DataFrame.from_records(
        ArticleScore.objects.filter(article_id__in=conditions)
        .order_by("scorer", "article_id")
        .values_list(*fields, *SCORE_METRICS)
        .iterator(chunk_size=CHUNK_SIZE),
        columns=["article_id", "article_origin", "title", "scorer", "n_tokens", *SCORE_METRICS],
    )
    frame["condition"] = frame["article_id"].map(conditions).astype(object)
    frame["n_tokens"] = frame["n_tokens"].astype(int)
    for column in SCORE_METRICS:
        frame[column] = frame[column].astype(float)
    return frame[ARTICLE_SCORE_COLUMNS]


PARTICIPANT_ANSWER_COLUMNS = ["participant_id", "question_key", "value", "value_numeric"]


def participant_answers_frame(*, study: Study, keys: list[str]) -> pd.DataFrame:
    """The answers to once-per-participant questions (``Question.Scope.PARTICIPANT``,
    e.g. the demographics' ``party_id`` and ``ideology``) with the given keys: one row per
    participant and question (``PARTICIPANT_ANSWER_COLUMNS``), test sessions included
    (join it to an analysed frame to leave them out)."""
    frame = pd.DataFrame.from_records(
        Response.objects.filter(
            participant__study=study,
            trial__isnull=True,
            question__scope=Question.Scope.PARTICIPANT,
            question__key__in=keys,
        )
        .order_by("participant_id", "question__key")
        .values_list("participant_id", "question__key", "value", "value_numeric")
        .iterator(chunk_size=CHUNK_SIZE),
        columns=PARTICIPANT_ANSWER_COLUMNS,
    )
    frame["value_numeric"] = frame["value_numeric"].astype(float)
    return frame
