"""The study report and the CSV export, shared by the command line and the results page."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis import stats
from analysis.frames import (
    CHUNK_SIZE,
    DATETIME_COLUMNS,
    RESPONSE_COLUMNS,
    LedgerStep,
    analysed_mask,
    exclusion_ledger,
    participants_frame,
    responses_chunks,
    responses_frame,
)
from surveys.models import Question, Study

POWER_COLUMNS = [
    "condition",
    "reference",
    "share",
    "reference_share",
    "n",
    "reference_n",
    "power",
    "n_for_80",
]


def power_table(comparisons: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """For each comparison: the power the two-proportion z test had to detect the
    observed difference with the ratings collected, and the ratings per condition that
    80% power would need at the observed rates (``stats.power_two_proportions`` and
    ``stats.sample_size_two_proportions``, R ``power.prop.test``'s formula). Power at the
    observed effect is a planning aid for the next study, not evidence about this one.
    NaN where a rate is 0 or 1 or both are equal."""
    rows = []
    for row in comparisons.itertuples(index=False):
        p1, p2 = float(row.share), float(row.reference_share)
        defined = 0.0 < p1 < 1.0 and 0.0 < p2 < 1.0
        power = (
            stats.power_two_proportions(p1, p2, int(row.n), int(row.reference_n), alpha)
            if defined
            else np.nan
        )
        needed = (
            stats.sample_size_two_proportions(p1, p2, alpha=alpha, power=0.8)
            if defined and p1 != p2
            else np.nan
        )
        rows.append(
            {
                "condition": row.condition,
                "reference": row.reference,
                "share": p1,
                "reference_share": p2,
                "n": int(row.n),
                "reference_n": int(row.reference_n),
                "power": power,
                "n_for_80": float(np.ceil(needed)) if not np.isnan(needed) else np.nan,
            }
        )
    return pd.DataFrame(rows, columns=POWER_COLUMNS)


@dataclass(frozen=True)
class StudyReport:
    """Everything the results page and ``manage.py analyze`` show about one study.

    Only completed, non-test participants who passed every attention check are analysed;
    ``ledger`` says how many were removed at each step. ``binary_question`` is the key of
    the yes/no question the proportions are about (``None`` when the study has none);
    ``reference`` is the control condition's name (``None`` when there is none)."""

    study_slug: str
    study_title: str
    ledger: list[LedgerStep]
    binary_question: str | None
    reference: str | None
    proportions: pd.DataFrame
    comparisons: pd.DataFrame
    likert: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    # Logistic regression of the yes/no answer on condition, participant-clustered errors
    # (None when it cannot be fitted; the reason is in ``notes``).
    regression: stats.LogisticFit | None = None
    # One row per comparison: ``POWER_COLUMNS``.
    power: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=POWER_COLUMNS))

    @property
    def analysed(self) -> int:
        return self.ledger[-1].remaining


def binary_question_for(*, study: Study) -> Question | None:
    """The yes/no question credibility rates are computed from: the one keyed
    "credible" if there is one, otherwise the first binary question about the articles."""
    binary = study.questions.filter(
        scope=Question.Scope.PER_ARTICLE, kind=Question.Kind.BINARY
    ).order_by("position", "id")
    return binary.filter(key="credible").first() or binary.first()


def study_report(*, study: Study) -> StudyReport:
    """Credibility rates with Wilson (and Clopper-Pearson) intervals per condition, each
    condition against the reference (z, chi-square, Fisher, Newcombe interval of the
    difference, Holm-adjusted p, odds ratio), a logistic regression on condition with
    participant-clustered errors, the power each comparison had and the n 80% power
    would need, and mean ratings per Likert question, over the analysed participants
    only."""
    participants = participants_frame(study=study)
    ledger = exclusion_ledger(participants)
    analysed_ids = set(participants.loc[analysed_mask(participants), "participant_id"])
    responses = responses_frame(study=study)
    responses = responses.loc[responses["participant_id"].isin(analysed_ids)]

    notes: list[str] = []
    question = binary_question_for(study=study)
    reference_condition = study.conditions.filter(is_reference=True).first()
    reference = reference_condition.name if reference_condition else None

    proportions = pd.DataFrame(columns=stats.PROPORTION_COLUMNS)
    comparisons = pd.DataFrame(columns=stats.COMPARISON_COLUMNS)
    regression: stats.LogisticFit | None = None
    if question is None:
        notes.append("The study has no yes/no question about the articles.")
    else:
        binary = responses.loc[responses["question_key"] == question.key]
        proportions = stats.proportions_by_condition(binary)
        # The reference first, then the others by name: the order every table reads in.
        if reference is not None:
            proportions = pd.concat(
                [
                    proportions.loc[proportions["condition"] == reference],
                    proportions.loc[proportions["condition"] != reference],
                ],
                ignore_index=True,
            )
        if reference is None:
            notes.append("No condition is marked as the reference, so nothing is compared.")
        elif reference not in set(proportions["condition"]):
            notes.append(f'The reference condition "{reference}" has no analysed answers yet.')
        elif len(proportions) > 1:
            comparisons = stats.compare_to_reference(binary, reference)
            try:
                regression = stats.logistic_regression(binary, reference)
            except ValueError as error:
                notes.append(f"No logistic regression: {error}")

    likert = stats.likert_means(responses.loc[responses["question_kind"] == Question.Kind.LIKERT])
    if reference is not None and not likert.empty:
        likert = likert.sort_values(
            ["condition", "question_key"],
            key=lambda column: column != reference if column.name == "condition" else column,
            kind="stable",
        ).reset_index(drop=True)
    return StudyReport(
        study_slug=study.slug,
        study_title=study.title,
        ledger=ledger,
        binary_question=question.key if question else None,
        reference=reference,
        proportions=proportions,
        comparisons=comparisons,
        likert=likert,
        notes=notes,
        regression=regression,
        power=power_table(comparisons),
    )


# ---------------------------------------------------------------------------------------
# CSV export


def responses_csv_chunks(
    *, study: Study, include_test: bool = False, chunk_size: int = CHUNK_SIZE
) -> Iterator[str]:
    """The long CSV (header, then one row per rating about an article, columns as
    ``analysis.frames.RESPONSE_COLUMNS``) as text pieces, one per chunk read from the
    database, so an export never holds the whole study in memory. The article ``url`` and
    ``license`` columns carry the attribution each Wikinews text needs."""
    header = True
    for chunk in responses_chunks(study=study, include_test=include_test, chunk_size=chunk_size):
        for column in DATETIME_COLUMNS:
            chunk[column] = _iso_utc(chunk[column])
        yield chunk.to_csv(index=False, header=header, lineterminator="\n")
        header = False
    if header:  # no ratings yet: still a valid CSV with its columns
        yield ",".join(RESPONSE_COLUMNS) + "\n"


def _iso_utc(column: pd.Series) -> pd.Series:
    """ISO 8601 UTC text ("2019-08-20T12:00:00.000000Z"), empty when missing. numpy's
    formatter is an order of magnitude faster than pandas' for a million timestamps."""
    values = column.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    text = np.datetime_as_string(values, unit="us", timezone="UTC")
    return pd.Series(np.where(column.isna().to_numpy(), "", text), index=column.index)
