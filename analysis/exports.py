"""File exports beyond the long CSV: the wide table (one row per participant), Parquet,
the codebook and the article manifest. The shapes are built here from the frames in
``analysis.frames``; nothing here queries the database itself."""

from __future__ import annotations

import csv
import gc
import io
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd

from analysis.frames import (
    CHUNK_SIZE,
    DATETIME_COLUMNS,
    RESPONSE_COLUMNS,
    SIGNAL_COLUMNS,
    analysed_mask,
    articles_manifest_frame,
    participant_id_ranges,
    participants_frame,
    responses_chunks,
    responses_frame,
    responses_max_position,
)
from analysis.spreadsheet import frame_for_spreadsheet, text_for_spreadsheet
from surveys.models import Participant, Question, Study

# ---------------------------------------------------------------------------------------
# Wide

WIDE_PARTICIPANT_COLUMNS = [
    "participant_id",
    "participant_token",
    "panel_pid",
    "condition",
    "status",
    "is_test",
    "analysed",
    "exclusion_reason",
    "consented_at",
    "completed_at",
    "checks_answered",
    "checks_failed",
    *SIGNAL_COLUMNS,
]
# Per shown article k (1-based position): these, then one q_<key>_<k> per question.
WIDE_TRIAL_FIELDS = {
    "article_id": "article_id",
    "condition": "condition",
    "article_origin": "article_origin",
    "shown_at": "first_shown_at",
    "answered_at": "answered_at",
}
EXCLUSION_REASONS = {
    "test": "test or preview session",
    "incomplete": "did not complete (in progress or withdrawn)",
    "attention": "failed an attention check",
}


def exclusion_reasons(participants: pd.DataFrame) -> pd.Series:
    """The first exclusion that applies to each participant, in the ledger's order, or ""
    for the analysed: "test", "incomplete", "screened_out", then the key of the first
    exclusion rule that removed them ("attention" for a failed attention check,
    "too_fast", "straight_lining", "straight_lining_<question>"; the study's keys and
    their labels are ``analysis.frames.exclusion_reason_labels``). Input: a
    ``participants_frame``, which computed them (``surveys.exclusions``)."""
    return participants["exclusion_reason"].astype(object).copy()


def _article_questions(study: Study) -> list[Question]:
    return list(study.questions.filter(scope=Question.Scope.PER_ARTICLE).order_by("position", "id"))


def wide_columns(*, positions: int, question_keys: list[str]) -> list[str]:
    """Column order of the wide export for ``positions`` articles per participant."""
    columns = list(WIDE_PARTICIPANT_COLUMNS)
    for k in range(1, positions + 1):
        columns += [f"{name}_{k}" for name in WIDE_TRIAL_FIELDS]
        columns += [f"q_{key}_{k}" for key in question_keys]
    return columns


def _flat_columns(frame: pd.DataFrame, prefix: str = "") -> list[str]:
    """``{prefix}{name}_{position}`` for the (name, position) columns an unstack made."""
    # pandas-stubs types DataFrame.columns as Index[str]; after an unstack they are a
    # MultiIndex of pairs.
    columns = cast(pd.MultiIndex, frame.columns)
    return [f"{prefix}{name}_{k}" for name, k in columns]


# Participants per piece of the wide export: with 10 articles and a few questions each,
# about 50,000 answers are pivoted at a time.
WIDE_CHUNK_SIZE = 1000


def _wide_piece(
    *,
    study: Study,
    id_range: tuple[int, int],
    include_test: bool,
    keys: list[str],
    columns: list[str],
    positions: int,
) -> pd.DataFrame:
    """The wide rows of the participants whose id lies in ``id_range``: everything about
    one participant is inside their own range, so pieces never need each other."""
    participants = participants_frame(study=study, id_range=id_range)
    if not include_test:
        participants = participants.loc[~participants["is_test"]]
    participants = participants.assign(
        analysed=analysed_mask(participants), exclusion_reason=exclusion_reasons(participants)
    )
    responses = responses_frame(study=study, include_test=include_test, id_range=id_range)
    wide = participants[WIDE_PARTICIPANT_COLUMNS].set_index("participant_id")
    if len(responses):
        trials = responses.drop_duplicates(["participant_id", "trial_position"]).set_index(
            ["participant_id", "trial_position"]
        )[list(WIDE_TRIAL_FIELDS.values())]
        trials.columns = list(WIDE_TRIAL_FIELDS)
        # A frame whose index is a MultiIndex unstacks to a frame (the stub allows a Series).
        trial_wide = cast(pd.DataFrame, trials.unstack("trial_position"))
        trial_wide.columns = _flat_columns(trial_wide)
        answers = responses.loc[responses["question_key"].isin(keys)].set_index(
            ["participant_id", "question_key", "trial_position"]
        )["value"]
        answer_wide = answers.unstack(["question_key", "trial_position"])
        answer_wide.columns = _flat_columns(answer_wide, prefix="q_")
        wide = wide.join(trial_wide).join(answer_wide)
    wide = wide.reset_index().reindex(columns=columns)
    for k in range(1, positions + 1):
        wide[f"article_id_{k}"] = wide[f"article_id_{k}"].astype("Int64")
    return wide


def wide_frames(
    *, study: Study, include_test: bool = False, chunk_size: int = WIDE_CHUNK_SIZE
) -> tuple[list[str], Iterator[pd.DataFrame]]:
    """The wide table's columns, and its rows as frames of at most ``chunk_size``
    participants in id order, each read from the database when it is needed (keyset
    pagination over participant ids), so memory is bounded by ``chunk_size`` however
    large the study. See :func:`wide_frame` for the columns."""
    keys = [question.key for question in _article_questions(study)]
    positions = responses_max_position(
        study=study, include_test=include_test, chunk_size=chunk_size
    )
    ranges = participant_id_ranges(study=study, include_test=include_test, chunk_size=chunk_size)
    first = next(ranges, None)
    if first is not None:
        # Everyone gets the study's article slots even before anyone answered.
        positions = max(positions, study.articles_per_participant)
    columns = wide_columns(positions=positions, question_keys=keys)

    def pieces() -> Iterator[pd.DataFrame]:
        if first is None:
            return
        for id_range in chain([first], ranges):
            yield _wide_piece(
                study=study,
                id_range=id_range,
                include_test=include_test,
                keys=keys,
                columns=columns,
                positions=positions,
            )
            # Each piece leaves some cyclic garbage (ORM and pandas objects) that would
            # otherwise pile up until the collector's next full pass, so that memory
            # grew with the number of pieces; collected here, it is bounded by one piece.
            # A full collection costs tens of milliseconds per thousand participants.
            gc.collect()

    return columns, pieces()


def wide_frame(*, study: Study, include_test: bool = False) -> pd.DataFrame:
    """One row per participant: who they are, their condition and status, whether and why
    they are excluded, and for each article position ``k`` the article shown
    (``article_id_k``, ``article_origin_k``, ``shown_at_k``, ``answered_at_k``) and each
    per-article question's answer as given (``q_<key>_<k>``; empty if not answered).
    Participants without any answer are included (their position columns are empty).
    Test sessions are left out unless ``include_test``. Holds the whole table: exports
    stream :func:`wide_csv_chunks` instead."""
    columns, pieces = wide_frames(study=study, include_test=include_test)
    frames = list(pieces)
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def wide_csv_chunks(
    *, study: Study, include_test: bool = False, chunk_size: int = WIDE_CHUNK_SIZE
) -> Iterator[str]:
    """:func:`wide_frame` as CSV text (ISO 8601 UTC timestamps) in pieces: the header,
    then the rows of ``chunk_size`` participants at a time, each built only when the
    consumer asks for it (a ``StreamingHttpResponse`` or a file being written). Text that a
    spreadsheet would run as a formula is prefixed with an apostrophe
    (``analysis.spreadsheet``)."""
    columns, pieces = wide_frames(study=study, include_test=include_test, chunk_size=chunk_size)
    yield pd.DataFrame(columns=columns).to_csv(index=False, lineterminator="\n")
    for wide in pieces:
        for column in wide.columns:
            if isinstance(wide[column].dtype, pd.DatetimeTZDtype) or column.startswith(
                ("shown_at_", "answered_at_")
            ):
                wide[column] = _iso_utc(pd.to_datetime(wide[column], utc=True))
        yield frame_for_spreadsheet(wide).to_csv(index=False, header=False, lineterminator="\n")


def wide_csv(*, study: Study, include_test: bool = False) -> str:
    """:func:`wide_csv_chunks` joined: the whole wide CSV as one text."""
    return "".join(wide_csv_chunks(study=study, include_test=include_test))


def _iso_utc(column: pd.Series) -> pd.Series:
    values = column.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    text = np.datetime_as_string(values, unit="us", timezone="UTC")
    return pd.Series(np.where(column.isna().to_numpy(), "", text), index=column.index)


# ---------------------------------------------------------------------------------------
# Parquet


def _parquet_schema() -> Any:
    import pyarrow as pa

    types = {
        "response_id": pa.int64(),
        "participant_id": pa.int64(),
        "is_test": pa.bool_(),
        "article_id": pa.int64(),
        "source_article_id": pa.int64(),
        "trial_position": pa.int64(),
        "value_numeric": pa.float64(),
        **{column: pa.timestamp("us", tz="UTC") for column in DATETIME_COLUMNS},
    }
    return pa.schema([(column, types.get(column, pa.string())) for column in RESPONSE_COLUMNS])


def responses_parquet_write(
    *, study: Study, path: Path, include_test: bool = False, chunk_size: int = CHUNK_SIZE
) -> int:
    """Write the long table (``RESPONSE_COLUMNS``, typed: integers, booleans, UTC
    timestamps, nullable ``source_article_id``) to a Parquet file, one row group per
    chunk read from the database, so memory stays bounded by ``chunk_size``. Returns the
    number of rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _parquet_schema()
    rows = 0
    with pq.ParquetWriter(str(path), schema) as writer:
        for chunk in responses_chunks(
            study=study, include_test=include_test, chunk_size=chunk_size
        ):
            for column in DATETIME_COLUMNS:
                chunk[column] = chunk[column].astype("datetime64[us, UTC]")
            writer.write_table(pa.Table.from_pandas(chunk, schema=schema, preserve_index=False))
            rows += len(chunk)
        if rows == 0:
            writer.write_table(schema.empty_table())
    return rows


# ---------------------------------------------------------------------------------------
# Codebook


@dataclass(frozen=True)
class CodebookEntry:
    export: str  # "long", "wide" or "question"
    column: str
    meaning: str
    type: str
    allowed: str


LONG_COLUMN_DOCS: dict[str, tuple[str, str, str]] = {
    "response_id": ("Database id of the answer; unique.", "integer", "positive"),
    "participant_id": ("Database id of the participation.", "integer", "positive"),
    "participant_token": ("Anonymous token of the participation.", "string", "UUID"),
    "panel_pid": ("Panel's participant id (Prolific/MTurk); personal data.", "string", "any"),
    "condition": (
        "Condition (study arm) the participant was assigned to.",
        "string",
        "the study's condition names",
    ),
    "is_test": ("Preview/test session; excluded from analysis.", "boolean", "True, False"),
    "participant_status": (
        "Status of the participation.",
        "string",
        ", ".join(Participant.Status.values),
    ),
    "article_id": ("Database id of the article rated.", "integer", "see the manifest"),
    "article_origin": ("Who wrote the article.", "string", "real, generated"),
    "source_article_id": (
        "For generated articles: the real article whose lede was the "
        "prompt; empty for real articles.",
        "integer",
        "empty or an id",
    ),
    "model_name": ("For generated articles: the model that wrote it.", "string", "any"),
    "outlet": ("Publisher of a real article.", "string", "any"),
    "url": ("Source URL of a real article (attribution).", "string", "URL or empty"),
    "license": ("License of the article text.", "string", "e.g. CC-BY-2.5"),
    "trial_position": (
        "Order in which the participant saw the article.",
        "integer",
        "1 to articles per participant",
    ),
    "question_key": (
        "Question answered (see the question section).",
        "string",
        "the study's question keys",
    ),
    "question_kind": ("Kind of question.", "string", ", ".join(Question.Kind.values)),
    "value": ("The answer as given (normalised).", "string", "see the question"),
    "value_numeric": (
        "Scored answer: yes=1/no=0, or the scale point; empty for choice and free text.",
        "number",
        "see the question",
    ),
    "first_shown_at": ("When the article was first shown.", "ISO 8601 UTC timestamp", "any"),
    "answered_at": ("When the article's answers were submitted.", "ISO 8601 UTC timestamp", "any"),
    "created_at": ("When the answer was first saved.", "ISO 8601 UTC timestamp", "any"),
    "updated_at": ("When the answer was last changed.", "ISO 8601 UTC timestamp", "any"),
}
WIDE_COLUMN_DOCS: dict[str, tuple[str, str, str]] = {
    "participant_id": LONG_COLUMN_DOCS["participant_id"],
    "participant_token": LONG_COLUMN_DOCS["participant_token"],
    "panel_pid": LONG_COLUMN_DOCS["panel_pid"],
    "condition": LONG_COLUMN_DOCS["condition"],
    "status": LONG_COLUMN_DOCS["participant_status"],
    "is_test": LONG_COLUMN_DOCS["is_test"],
    "analysed": (
        "Counted in the analysis (not a test, completed, passed every check).",
        "boolean",
        "True, False",
    ),
    "exclusion_reason": (
        "First exclusion that applies; empty when analysed.",
        "string",
        "empty, " + ", ".join(f"{k} ({v})" for k, v in EXCLUSION_REASONS.items()),
    ),
    "consented_at": ("When the participant consented.", "ISO 8601 UTC timestamp", "any"),
    "completed_at": (
        "When the participant finished; empty if not.",
        "ISO 8601 UTC timestamp",
        "any or empty",
    ),
    "checks_answered": ("Attention checks answered.", "integer", "0 or more"),
    "checks_failed": ("Attention checks answered wrongly.", "integer", "0 or more"),
    # The fraud and assisted-answering signals (surveys.fraud).
    "duplicate_browser": (
        "Another participation of the study came from the same browser (a first-party "
        "cookie, stored as a keyed hash).",
        "boolean",
        "True, False",
    ),
    "network_burst": (
        "Arrived in a burst of participations from one network (a keyed hash of the IP "
        "address; the site's CREDENCE_BURST_PARTICIPATIONS within CREDENCE_BURST_MINUTES).",
        "boolean",
        "True, False",
    ),
    "honeypot_filled": (
        "Filled in the consent form's hidden field, which people never see.",
        "boolean",
        "True, False",
    ),
    "article_copies": (
        "Times article text was copied, over all articles; empty when no answer ran JavaScript.",
        "integer",
        "0 or more, or empty",
    ),
    "answer_pastes": (
        "Times something was pasted into a free-text answer about an article; empty when "
        "no answer ran JavaScript.",
        "integer",
        "0 or more, or empty",
    ),
    "javascript": (
        "Whether the article answers ran JavaScript; empty before the first answer.",
        "boolean",
        "True, False, or empty",
    ),
    "article_id_<k>": ("Article shown at position k.", "integer", "see the manifest"),
    "condition_<k>": (
        "Condition the article at position k was drawn from (differs by position in "
        "within-subjects designs).",
        "string",
        "the study's condition names",
    ),
    "article_origin_<k>": ("Who wrote the article at position k.", "string", "real, generated"),
    "shown_at_<k>": (
        "When the article at position k was first shown.",
        "ISO 8601 UTC timestamp",
        "any",
    ),
    "answered_at_<k>": (
        "When the answers about position k were submitted.",
        "ISO 8601 UTC timestamp",
        "any",
    ),
}


def _analysis_role(definition: dict[str, Any]) -> str:
    """One short phrase for a question's stored scoring definition ("" when none)."""
    role = definition.get("role") if isinstance(definition, dict) else None
    if role == "credible":
        return "the yes/no credibility question (credibility rates)"
    if role == "credibility_item":
        return "an item of the Kreps credibility index"
    if role == "detection":
        lists = [
            f"{name} = {', '.join(map(repr, definition[name]))}"
            for name in ("human", "machine", "neutral")
            if definition.get(name)
        ]
        return "human-or-machine detection" + (f" ({'; '.join(lists)})" if lists else "")
    return ""


def _question_entry(question: Question) -> CodebookEntry:
    kind = question.get_kind_display()
    if question.kind == Question.Kind.BINARY:
        allowed, scoring = "yes, no", "value_numeric: yes = 1, no = 0"
    elif question.kind == Question.Kind.LIKERT:
        labels = ""
        if question.min_label or question.max_label:
            labels = f" ({question.scale_min} = {question.min_label}, "
            labels += f"{question.scale_max} = {question.max_label})"
        allowed = f"integers {question.scale_min} to {question.scale_max}{labels}"
        scoring = "value_numeric: the scale point"
    elif question.kind == Question.Kind.CHOICE:
        allowed = ", ".join(str(choice) for choice in question.choices)
        scoring = "not scored (value_numeric empty)"
        if question.expected_answer:
            scoring += f"; passes when equal to {question.expected_answer!r} (case-insensitive)"
    else:
        allowed, scoring = "free text up to 5,000 characters", "not scored"
    role = _analysis_role(question.scoring)
    if role:
        scoring += f"; analysis: {role}"
    scope = question.get_scope_display()
    where = (
        f"long: rows with question_key = {question.key}; wide: q_{question.key}_<k>"
        if question.scope == Question.Scope.PER_ARTICLE
        else "wide: counted in checks_answered / checks_failed"
    )
    required = "required" if question.required else "optional"
    return CodebookEntry(
        export="question",
        column=question.key,
        meaning=f"{question.text} [{scope}; {required}; {where}]",
        type=kind,
        allowed=f"{allowed}. Scoring: {scoring}",
    )


def codebook_entries(*, study: Study) -> list[CodebookEntry]:
    """Every column of the long and the wide export, then every question of the study
    (wording, kind, scale or options, scoring), from the study's own Question rows."""
    entries = [
        CodebookEntry("long", column, *LONG_COLUMN_DOCS[column]) for column in RESPONSE_COLUMNS
    ]
    entries += [CodebookEntry("wide", column, *doc) for column, doc in WIDE_COLUMN_DOCS.items()]
    questions = study.questions.order_by("scope", "position", "id")
    entries += [
        CodebookEntry(
            "wide",
            f"q_{question.key}_<k>",
            f"Answer to {question.key!r} about the article at position k (see below).",
            "string",
            "as the question",
        )
        for question in questions
        if question.scope == Question.Scope.PER_ARTICLE
    ]
    entries += [_question_entry(question) for question in questions]
    return entries


CODEBOOK_COLUMNS = ["export", "column", "meaning", "type", "allowed"]


def codebook_csv(*, study: Study) -> str:
    """The codebook as CSV (``CODEBOOK_COLUMNS``); question wording is researchers' text,
    so formulas are neutralised (``analysis.spreadsheet``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CODEBOOK_COLUMNS)
    for entry in codebook_entries(study=study):
        cells = [entry.export, entry.column, entry.meaning, entry.type, entry.allowed]
        writer.writerow([text_for_spreadsheet(cell) for cell in cells])
    return buffer.getvalue()


def codebook_markdown(*, study: Study) -> str:
    """The codebook as Markdown: one table per export, then the questions."""
    entries = codebook_entries(study=study)
    titles = {
        "long": "Long export (one row per answer about an article)",
        "wide": "Wide export (one row per participant; <k> is the article position)",
        "question": "Questions",
    }
    lines = [f"# Codebook: {study.title} ({study.slug})", ""]
    for export, title in titles.items():
        lines += [
            f"## {title}",
            "",
            "| column | meaning | type | allowed values |",
            "|---|---|---|---|",
        ]
        for entry in entries:
            if entry.export == export:
                cells = [entry.column, entry.meaning, entry.type, entry.allowed]
                lines.append("| " + " | ".join(_md_cell(cell) for cell in cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# ---------------------------------------------------------------------------------------
# Manifest


def manifest_csv(*, study: Study) -> str:
    """Every article the study uses with its provenance (see
    ``analysis.frames.articles_manifest_frame``) as CSV, formulas neutralised
    (``analysis.spreadsheet``): titles, outlets and prompts come from outside."""
    manifest = frame_for_spreadsheet(articles_manifest_frame(study=study))
    return manifest.to_csv(index=False, lineterminator="\n")
