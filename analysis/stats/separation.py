"""Detector separation: how well a detector score (or the participants' ratings) tells
generated from real articles, as ROC AUC with DeLong intervals, and where people and a
detector disagree most."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.stats.inputs import binary_labels, z_critical

AUC_METHOD = "DeLong (1988) SE; Wald interval clipped to [0, 1] (as pROC ci.auc)"


@dataclass(frozen=True)
class AucResult:
    """Result of :func:`roc_auc`: the empirical AUC (Mann-Whitney probability), its DeLong
    standard error and interval, and how many positives and negatives it rests on."""

    auc: float
    se: float
    ci_low: float
    ci_high: float
    n_pos: int
    n_neg: int
    method: str = AUC_METHOD


def roc_auc(
    scores: np.ndarray | pd.Series | list[float],
    labels: np.ndarray | pd.Series | list[bool] | list[int],
    *,
    confidence: float = 0.95,
    higher_means_positive: bool = True,
) -> AucResult:
    """Area under the empirical ROC curve with DeLong's standard error and interval.

    AUC: the Mann-Whitney probability ``P(score_pos > score_neg) + 0.5 P(tie)`` over all
    positive-negative pairs, i.e. ``U / (n_pos n_neg)`` (Hanley & McNeil 1982), equal to the
    trapezoidal area under the empirical ROC curve. With ``higher_means_positive=False``
    the scores are negated first, so low scores count as "positive-like".
    SE: DeLong, DeLong & Clarke-Pearson (1988), Biometrics 44:837-845, structural
    components: each positive's placement ``V10_i`` (share of negatives it beats, ties
    half) and each negative's ``V01_j`` (share of positives that beat it);
    ``var = s^2(V10) / n_pos + s^2(V01) / n_neg`` with n-1 denominators. Placements come
    from mid-ranks (pooled rank minus within-group rank), O(N log N).
    Interval: ``auc +- z * se`` on the plain AUC scale, clipped to [0, 1], as R pROC's
    ``ci.auc(method = "delong")`` (not the logit scale). At AUC 0 or 1 the SE is 0 and
    the interval collapses to a point: the data then cannot say how far from perfect
    the score is, so read it together with ``n_pos``/``n_neg``. With a single positive or
    negative the SE and interval are NaN.
    Assumptions: the scored items (articles) are independent; for AUCs computed from
    human ratings the interval ignores that the same participants rated several articles.

    ``labels`` are 1/True for positives and 0/False for negatives. Raises ValueError for
    mismatched lengths, missing scores, labels other than 0/1, or a class with no items.
    """
    z = z_critical(confidence)
    x = np.asarray(scores, dtype=float)
    raw_labels = np.asarray(labels)
    if x.ndim != 1 or raw_labels.shape != x.shape:
        raise ValueError(
            f"scores and labels must be 1-D and of equal length, got {x.shape} and "
            f"{raw_labels.shape}"
        )
    if np.isnan(x).any():
        raise ValueError("scores contain missing values; drop them before computing the AUC")
    positive, n_pos, n_neg = binary_labels(raw_labels)
    if not higher_means_positive:
        x = -x
    pooled = sps.rankdata(x)
    pos_scores, neg_scores = x[positive], x[~positive]
    # Mid-ranks make "pooled rank - rank within own group" the number of the other
    # group's items below, plus half the ties: exactly the DeLong placement counts.
    v10 = (pooled[positive] - sps.rankdata(pos_scores)) / n_neg
    v01 = 1.0 - (pooled[~positive] - sps.rankdata(neg_scores)) / n_pos
    auc = float(v10.mean())
    if n_pos < 2 or n_neg < 2:
        nan = math.nan
        return AucResult(auc, nan, nan, nan, n_pos, n_neg)
    se = math.sqrt(float(v10.var(ddof=1)) / n_pos + float(v01.var(ddof=1)) / n_neg)
    return AucResult(
        auc=auc,
        se=se,
        ci_low=max(0.0, auc - z * se),
        ci_high=min(1.0, auc + z * se),
        n_pos=n_pos,
        n_neg=n_neg,
    )


HIGHER, LOWER = "higher", "lower"

# Which end of each detector score points to machine-generated text, fixed in advance
# from how the score is built, never chosen from the data (picking whichever direction
# gives the larger AUC would bias every AUC upward, towards >= 0.5). Text sampled from a
# language model is more probable under (a model like) it than human text: higher mean
# token log-probability, lower perplexity (= exp(-mean log-prob)), and more tokens among
# the model's top-k predictions (GLTR, Gehrmann, Strobelt & Rush 2019). Fast-DetectGPT's
# sampling discrepancy is higher for machine text (Bao et al. 2024), the Binoculars score
# lower (Hans et al. 2024: a low perplexity relative to the cross-perplexity).
DETECTOR_DIRECTIONS: dict[str, str] = {
    "mean_logprob": HIGHER,
    "perplexity": LOWER,
    "rank_lt_10": HIGHER,
    "rank_lt_100": HIGHER,
    "rank_lt_1000": HIGHER,
    "fast_detectgpt": HIGHER,
    "binoculars": LOWER,
}

SEPARATION_COLUMNS = [
    "score",
    "direction",
    "auc",
    "se",
    "ci_low",
    "ci_high",
    "n_pos",
    "n_neg",
    "method",
]


def _separation_rows(
    data: pd.DataFrame,
    *,
    score: str,
    direction: str,
    is_positive: pd.Series,
    by: str | None,
    confidence: float,
) -> list[dict[str, object]]:
    present = data[score].notna()
    negatives = data.loc[present & ~is_positive, score].to_numpy(dtype=float)
    positives_all = data.loc[present & is_positive]
    groups: list[tuple[object, pd.DataFrame]] = (
        [(None, positives_all)]
        if by is None
        else [(key, group) for key, group in positives_all.groupby(by, sort=True)]
    )
    rows: list[dict[str, object]] = []
    for key, group in groups:
        pos = group[score].to_numpy(dtype=float)
        row: dict[str, object] = {} if by is None else {by: key}
        row.update({"score": score, "direction": direction})
        if len(pos) == 0 or len(negatives) == 0:
            # Report the gap instead of dropping the row: an empty cell in the table says
            # "no data" more clearly than a missing score.
            nan = math.nan
            row.update(
                auc=nan, se=nan, ci_low=nan, ci_high=nan, n_pos=len(pos), n_neg=len(negatives)
            )
            row["method"] = AUC_METHOD
        else:
            result = roc_auc(
                np.concatenate([pos, negatives]),
                np.concatenate([np.ones(len(pos)), np.zeros(len(negatives))]),
                confidence=confidence,
                higher_means_positive=direction == HIGHER,
            )
            row.update(
                auc=result.auc,
                se=result.se,
                ci_low=result.ci_low,
                ci_high=result.ci_high,
                n_pos=result.n_pos,
                n_neg=result.n_neg,
                method=result.method,
            )
        rows.append(row)
    return rows


def _origin_mask(
    df: pd.DataFrame, label_column: str, positive: str, negative: str, required: set[str]
) -> pd.Series:
    missing = (required | {label_column}) - set(df.columns)
    if missing:
        raise ValueError(f"missing column(s): {', '.join(sorted(missing))}")
    if "article_id" in df.columns and df["article_id"].duplicated().any():
        examples = df.loc[df["article_id"].duplicated(), "article_id"].unique()[:5].tolist()
        raise ValueError(f"each article must appear once; repeated article_id(s): {examples}")
    unknown = ~df[label_column].isin([positive, negative])
    if unknown.any():
        examples = sorted(map(str, df.loc[unknown, label_column].unique()))[:5]
        raise ValueError(f'{label_column} must be "{positive}" or "{negative}"; got {examples}')
    return df[label_column] == positive


def detector_separation(
    df: pd.DataFrame,
    *,
    score_columns: list[str] | tuple[str, ...],
    label_column: str = "article_origin",
    positive: str = "generated",
    negative: str = "real",
    directions: dict[str, str] | None = None,
    by: str | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """How well each detector score separates generated from real articles (ROC AUC).

    Input: one row per article with ``label_column`` (``positive`` or ``negative``; any
    other value is a ValueError), the ``score_columns`` (NaN = not scored: that article is
    left out for that score only) and, if present, ``article_id`` (must be unique).
    Direction: fixed per score before looking at the data, from ``directions`` (overrides)
    then :data:`DETECTOR_DIRECTIONS` (perplexity: lower = generated), else "higher" =
    generated. An AUC below 0.5 therefore means the score points the other way than
    expected; it is reported as such, not flipped.
    ``by`` (e.g. ``"condition"``): one AUC per value of that column among the positives,
    each against all negatives (the real articles are the shared reference, as in
    :func:`compare_to_reference`).
    Output: ``SEPARATION_COLUMNS`` (with ``by`` first when given), one row per score (and
    group), in the order of ``score_columns``; AUC, SE and interval from :func:`roc_auc`
    (NaN when a class has no scored article). Assumptions: articles are independent.
    """
    if not score_columns:
        raise ValueError("score_columns must name at least one score")
    is_positive = _origin_mask(
        df, label_column, positive, negative, set(score_columns) | ({by} if by else set())
    )
    chosen = {**DETECTOR_DIRECTIONS, **(directions or {})}
    rows: list[dict[str, object]] = []
    for score in score_columns:
        direction = chosen.get(score, HIGHER)
        if direction not in (HIGHER, LOWER):
            raise ValueError(
                f'direction for {score} must be "higher" or "lower", got {direction!r}'
            )
        rows.extend(
            _separation_rows(
                df,
                score=score,
                direction=direction,
                is_positive=is_positive,
                by=by,
                confidence=confidence,
            )
        )
    columns = ([by] if by else []) + SEPARATION_COLUMNS
    return pd.DataFrame(rows, columns=columns)


HUMAN_SCORE = "human (1 - credible_share)"


def _credible_share(df: pd.DataFrame) -> pd.Series:
    share = pd.to_numeric(df["credible_share"], errors="raise").astype(float)
    if ((share < 0) | (share > 1)).any():
        raise ValueError("credible_share must be between 0 and 1")
    return share


def human_separation(
    df: pd.DataFrame,
    *,
    label_column: str = "article_origin",
    positive: str = "generated",
    negative: str = "real",
    by: str | None = None,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Participants as a detector: the AUC of ``1 - credible_share`` for telling generated
    from real articles, in the same table format as :func:`detector_separation` so the two
    can be stacked (``score`` = "human (1 - credible_share)", ``direction`` = "higher").

    Input: one row per article with ``article_id`` (unique), ``label_column`` and
    ``credible_share`` (share of the participants who rated it credible, in [0, 1]; NaN =
    not rated, left out). An article rated less credible counts as more machine-like.
    Assumptions: articles are independent and each share is taken as exact; the interval
    ignores both the sampling error of each share (few raters per article widen the true
    uncertainty) and that the same participants rated several articles.
    """
    is_positive = _origin_mask(
        df,
        label_column,
        positive,
        negative,
        {"article_id", "credible_share"} | ({by} if by else set()),
    )
    data = df.copy()
    data[HUMAN_SCORE] = 1.0 - _credible_share(df)
    rows = _separation_rows(
        data,
        score=HUMAN_SCORE,
        direction=HIGHER,
        is_positive=is_positive,
        by=by,
        confidence=confidence,
    )
    columns = ([by] if by else []) + SEPARATION_COLUMNS
    return pd.DataFrame(rows, columns=columns)


DISAGREEMENT_COLUMNS = [
    "article_id",
    "article_origin",
    "human_machine_likeness_pct",
    "detector_machine_likeness_pct",
    "gap",
    "abs_gap",
]


def _percentile_ranks(values: pd.Series) -> pd.Series:
    # Mid-rank percentiles (rank - 0.5) / N * 100: ties share a value, and the scale is
    # symmetric (the lowest of N sits at 50/N, the highest at 100 - 50/N).
    return (values.rank(method="average") - 0.5) / len(values) * 100.0


def human_detector_disagreements(
    df: pd.DataFrame,
    *,
    score_column: str,
    top: int = 10,
    direction: str | None = None,
) -> pd.DataFrame:
    """The articles on which participants and a detector disagree most.

    Input: one row per article of one study with ``article_id`` (unique),
    ``article_origin``, ``credible_share`` (in [0, 1]) and ``score_column``; articles
    missing either value are left out. Both are turned into "machine-likeness"
    percentiles (mid-rank, 0-100) within the articles given: humans' from
    ``1 - credible_share``, the detector's from the score oriented by ``direction``
    (default: :data:`DETECTOR_DIRECTIONS`, else "higher" = machine-like). Ranks make the
    two comparable whatever the score's scale.
    Output: ``DISAGREEMENT_COLUMNS``, the ``top`` articles with the largest ``abs_gap``
    (ties by ``article_id``); ``gap = human - detector`` percentile, so a positive gap is
    an article people found more machine-like than the detector did.
    """
    if top < 1:
        raise ValueError(f"top must be a positive number of articles, got {top}")
    missing = {"article_id", "article_origin", "credible_share", score_column} - set(df.columns)
    if missing:
        raise ValueError(f"missing column(s): {', '.join(sorted(missing))}")
    if df["article_id"].duplicated().any():
        examples = df.loc[df["article_id"].duplicated(), "article_id"].unique()[:5].tolist()
        raise ValueError(f"each article must appear once; repeated article_id(s): {examples}")
    chosen = direction or DETECTOR_DIRECTIONS.get(score_column, HIGHER)
    if chosen not in (HIGHER, LOWER):
        raise ValueError(f'direction must be "higher" or "lower", got {chosen!r}')
    data = df.loc[df["credible_share"].notna() & df[score_column].notna()].copy()
    if data.empty:
        return pd.DataFrame(columns=DISAGREEMENT_COLUMNS)
    score = data[score_column].astype(float)
    data["human_machine_likeness_pct"] = _percentile_ranks(1.0 - _credible_share(data))
    data["detector_machine_likeness_pct"] = _percentile_ranks(score if chosen == HIGHER else -score)
    data["gap"] = data["human_machine_likeness_pct"] - data["detector_machine_likeness_pct"]
    data["abs_gap"] = data["gap"].abs()
    data = data.sort_values(["abs_gap", "article_id"], ascending=[False, True], kind="stable")
    return data.head(top)[DISAGREEMENT_COLUMNS].reset_index(drop=True)
