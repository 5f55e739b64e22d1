"""Detection designs: how well participants tell human from machine-written articles
(accuracy, signal detection d' and c), and agreement between coders (Krippendorff)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from studyplatform.measures import scoring

# The word-based map lives in studyplatform.measures.scoring (a pure module the question
# model uses too); a question's stored definition may replace it
# (``studyplatform.measures.scoring.detection_judge``).
HUMAN, MACHINE, UNSURE = scoring.HUMAN, scoring.MACHINE, scoring.UNSURE
detection_judgement = scoring.detection_judgement


DETECTION_COLUMNS = [
    "participant_id",
    "answered",
    "unsure",
    "decided",
    "correct",
    "accuracy",
    "unsure_rate",
]


def detection_accuracy(
    df: pd.DataFrame, *, judge: Callable[[str], str | None] = detection_judgement
) -> pd.DataFrame:
    """Per-participant accuracy at telling human from machine-written articles.

    Input columns: ``participant_id``, ``article_origin`` ("real" = written by a human,
    anything else = machine-written) and ``value`` (the answer text, mapped by ``judge``:
    by default :func:`detection_judgement`; None = not scored). Following Brown et al.
    (2020, "Language Models are Few-Shot Learners", sec. 3.9.4), accuracy is ``correct /
    non-neutral answers``: "I don't know" answers are left out of the ratio and reported
    separately as
    ``unsure_rate = unsure / answered``. Accuracy is NaN for someone who never decided.
    """
    missing = {"participant_id", "article_origin", "value"} - set(df.columns)
    if missing:
        raise ValueError(f"missing column(s): {', '.join(sorted(missing))}")
    judged = df["value"].map(judge)
    data = pd.DataFrame(
        {
            "participant_id": df["participant_id"],
            "judgement": judged,
            "truth": np.where(df["article_origin"] == "real", HUMAN, MACHINE),
        }
    ).dropna(subset=["judgement"])
    if data.empty:
        return pd.DataFrame(columns=DETECTION_COLUMNS)
    data["unsure"] = data["judgement"] == UNSURE
    data["correct"] = ~data["unsure"] & (data["judgement"] == data["truth"])
    table = data.groupby("participant_id", sort=True).agg(
        answered=("judgement", "size"), unsure=("unsure", "sum"), correct=("correct", "sum")
    )
    table["decided"] = table["answered"] - table["unsure"]
    with np.errstate(invalid="ignore", divide="ignore"):
        table["accuracy"] = np.where(
            table["decided"] > 0,
            table["correct"] / table["decided"].where(table["decided"] > 0),
            np.nan,
        )
    table["unsure_rate"] = table["unsure"] / table["answered"]
    return table.reset_index()[DETECTION_COLUMNS]


@dataclass(frozen=True)
class SignalDetection:
    """Result of :func:`signal_detection`: rates after the correction, d' and c."""

    hit_rate: float
    false_alarm_rate: float
    d_prime: float
    criterion: float
    corrected: bool


def signal_detection(
    hits: float,
    signal_trials: float,
    false_alarms: float,
    noise_trials: float,
    correction: bool = True,
) -> SignalDetection:
    """Sensitivity d' and criterion c of the equal-variance Gaussian model.

    ``d' = z(H) - z(F)`` and ``c = -(z(H) + z(F)) / 2`` (Macmillan & Creelman,
    *Detection Theory: A User's Guide*, ch. 1-2), where a "signal" is a machine-written
    article and a hit is calling it machine-written; a false alarm is calling a human
    article machine-written. With ``correction`` (default) the log-linear correction of
    Hautus (1995) is applied so that rates of 0 or 1 give finite z: ``H = (hits + 0.5) /
    (signal_trials + 1)``, likewise for F. Positive c is a bias towards "human".
    Raises ValueError for impossible counts.
    """
    for count, total, name in (
        (hits, signal_trials, "hits"),
        (false_alarms, noise_trials, "false alarms"),
    ):
        if total <= 0 or not 0 <= count <= total:
            raise ValueError(f"{name} must be between 0 and a positive number of trials")
    if correction:
        h = (hits + 0.5) / (signal_trials + 1.0)
        f = (false_alarms + 0.5) / (noise_trials + 1.0)
    else:
        h, f = hits / signal_trials, false_alarms / noise_trials
    zh, zf = float(sps.norm.ppf(h)), float(sps.norm.ppf(f))
    return SignalDetection(h, f, zh - zf, -(zh + zf) / 2.0, correction)


PARTICIPANT_D_PRIME_COLUMNS = [
    "participant_id",
    "hits",
    "signal_trials",
    "false_alarms",
    "noise_trials",
    "d_prime",
]


def participant_d_prime(
    df: pd.DataFrame, *, judge: Callable[[str], str | None] = detection_judgement
) -> pd.DataFrame:
    """Each participant's own d' (:func:`signal_detection`, log-linear correction), from
    the articles that participant decided about ("I don't know" and unscored answers
    dropped, as for the pooled d').

    Input columns: as :func:`detection_accuracy`. Output: ``PARTICIPANT_D_PRIME_COLUMNS``,
    one row per participant with a decided answer; ``d_prime`` is NaN for someone who
    decided about no machine-written or no human-written article (in a between-subjects
    design that is everyone: d' needs both kinds of article). The mean of these per-person
    values is a different quantity from the d' of the pooled hit and false-alarm rates:
    the pooled d' treats all answers as one observer's, the mean d' averages observers,
    and with few trials per person the log-linear correction pulls each person's d'
    towards 0 (Macmillan & Creelman, *Detection Theory*, on averaging over observers)."""
    missing = {"participant_id", "article_origin", "value"} - set(df.columns)
    if missing:
        raise ValueError(f"missing column(s): {', '.join(sorted(missing))}")
    judged = df["value"].map(judge)
    decided = judged.isin([HUMAN, MACHINE])
    machine = (df["article_origin"] != "real")[decided]
    said_machine = (judged == MACHINE)[decided]
    data = pd.DataFrame(
        {
            "participant_id": df.loc[decided, "participant_id"],
            "hit": machine & said_machine,
            "signal": machine,
            "false_alarm": ~machine & said_machine,
            "noise": ~machine,
        }
    )
    if data.empty:
        return pd.DataFrame(columns=PARTICIPANT_D_PRIME_COLUMNS)
    table = data.groupby("participant_id", sort=True).agg(
        hits=("hit", "sum"),
        signal_trials=("signal", "sum"),
        false_alarms=("false_alarm", "sum"),
        noise_trials=("noise", "sum"),
    )
    table["d_prime"] = [
        signal_detection(int(h), int(s), int(f), int(n)).d_prime if s and n else math.nan
        for h, s, f, n in zip(
            table["hits"],
            table["signal_trials"],
            table["false_alarms"],
            table["noise_trials"],
            strict=True,
        )
    ]
    return table.reset_index()[PARTICIPANT_D_PRIME_COLUMNS]


def krippendorff_alpha_nominal(data: np.ndarray | list[list[object]]) -> float:
    """Krippendorff's alpha for nominal data, any number of coders, missing values allowed.

    Input: a coders x units matrix; ``None`` or NaN marks a missing value. Following
    Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": units coded by fewer
    than two coders are dropped; the coincidence matrix ``o_ck = sum_u (number of c-k
    pairs in u) / (m_u - 1)``; ``alpha = 1 - (n - 1) * sum_{c != k} o_ck /
    sum_{c != k} n_c n_k``. NaN when fewer than two values are pairable or only one value
    occurs (no disagreement is possible).
    """
    matrix = np.asarray(data, dtype=object)
    if matrix.ndim != 2:
        raise ValueError("Krippendorff's alpha needs a coders x units matrix.")

    def present(value: object) -> bool:
        return value is not None and not (isinstance(value, float) and math.isnan(value))

    coincidences: dict[tuple[object, object], float] = {}
    for unit in matrix.T:
        values = [v for v in unit if present(v)]
        m = len(values)
        if m < 2:
            continue
        for i, a in enumerate(values):
            for j, b in enumerate(values):
                if i != j:
                    coincidences[(a, b)] = coincidences.get((a, b), 0.0) + 1.0 / (m - 1)
    totals: dict[object, float] = {}
    for (a, _b), weight in coincidences.items():
        totals[a] = totals.get(a, 0.0) + weight
    n = sum(totals.values())
    if n < 2 or len(totals) < 2:
        return math.nan
    observed = sum(w for (a, b), w in coincidences.items() if a != b)
    expected = sum(totals[a] * totals[b] for a in totals for b in totals if a != b)
    return 1.0 - (n - 1.0) * observed / expected
