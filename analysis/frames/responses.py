"""The long frame: one row per answer about an article, read a page of participants at a
time with single-table queries and joined in pandas (``responses_frame``,
``responses_chunks``), and the participant pages that walk a study."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd
from django.db.models import QuerySet

from analysis.frames.columns import (
    CHUNK_SIZE,
    DATETIME_COLUMNS,
    bool_from_text,
    names_of,
    raw_fields,
    uuid_text,
)
from surveys.models import Article, Condition, Participant, Question, Response, Study, Trial

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


def _typed_responses(frame: pd.DataFrame) -> pd.DataFrame:
    present = set(frame.columns)
    if "participant_token" in present:
        frame["participant_token"] = uuid_text(frame["participant_token"])
    for column in DATETIME_COLUMNS:
        if column in present:
            frame[column] = pd.to_datetime(frame[column], utc=True, format="ISO8601")
    # Nullable integer: real articles have no source article.
    if "source_article_id" in present:
        frame["source_article_id"] = frame["source_article_id"].astype("Int64")
    if "value_numeric" in present:
        frame["value_numeric"] = frame["value_numeric"].astype(float)
    if "is_test" in present:
        frame["is_test"] = bool_from_text(frame["is_test"])
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
    rows = list(queryset.order_by().values_list(*raw_fields(chosen)))
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
        rows["condition"] = names_of(rows["condition_id"], tables.condition_names)
    return rows.sort_values(_SORT, kind="stable", ignore_index=True)


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
    queryset = Participant.objects.for_study(study)
    if not include_test:
        queryset = queryset.real()
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
