"""The report's tables built from the statistics (``analysis.stats``): power at the
observed rates, the credibility index's tests, the detection summary, each article's
credibility, and the detectors' separation against the participants'. Pure functions over
the frames' DataFrames; ``analysis.services.study_report`` assembles them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from analysis import stats
from analysis.cells import cell_float, cell_int
from analysis.frames import SCORE_METRICS

POWER_COLUMNS = [
    "condition",
    "reference",
    "share",
    "reference_share",
    "n",
    "reference_n",
    "power",
    "n_for_80",
    "n_for_80_cc",
]


def power_table(comparisons: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """For each comparison: the power the two-proportion z test had to detect the
    observed difference with the ratings collected, and the ratings per condition that
    80% power would need at the observed rates (``stats.power_two_proportions`` and
    ``stats.sample_size_two_proportions``, R ``power.prop.test``'s formula; and, as
    ``n_for_80_cc``, with Fleiss-Tytun-Ury's continuity correction, for the Yates-corrected
    chi-square test R's ``prop.test`` runs by default). Power at the
    observed effect is a planning aid for the next study, not evidence about this one.
    NaN where a rate is 0 or 1 or both are equal."""
    rows = []
    for row in comparisons.itertuples(index=False):
        p1, p2 = cell_float(row.share), cell_float(row.reference_share)
        defined = 0.0 < p1 < 1.0 and 0.0 < p2 < 1.0
        power = (
            stats.power_two_proportions(p1, p2, cell_int(row.n), cell_int(row.reference_n), alpha)
            if defined
            else np.nan
        )
        needed, needed_cc = (
            (
                stats.sample_size_two_proportions(p1, p2, alpha=alpha, power=0.8),
                stats.sample_size_two_proportions(
                    p1, p2, alpha=alpha, power=0.8, continuity_correction=True
                ),
            )
            if defined and p1 != p2
            else (np.nan, np.nan)
        )
        rows.append(
            {
                "condition": row.condition,
                "reference": row.reference,
                "share": p1,
                "reference_share": p2,
                "n": cell_int(row.n),
                "reference_n": cell_int(row.reference_n),
                "power": power,
                "n_for_80": float(np.ceil(needed)) if not np.isnan(needed) else np.nan,
                "n_for_80_cc": float(np.ceil(needed_cc)) if not np.isnan(needed_cc) else np.nan,
            }
        )
    return pd.DataFrame(rows, columns=POWER_COLUMNS)


INDEX_TEST_COLUMNS = [
    "condition",
    "reference",
    "difference",
    "welch_t",
    "welch_df",
    "welch_p",
    "ci_low",
    "ci_high",
    "student_t",
    "student_df",
    "student_p",
]
ALL_CONDITIONS = "(all conditions)"
DETECTION_SUMMARY_COLUMNS = [
    "condition",
    "participants",
    "mean_accuracy",
    "mean_unsure_rate",
    "hit_rate",
    "false_alarm_rate",
    "d_prime",
    "criterion",
    "krippendorff_alpha",
]


def index_tests(index: pd.DataFrame, reference: str | None) -> pd.DataFrame:
    """Each condition's credibility index against the reference's: Welch's and Student's
    two-sample t tests (``stats.t_test``). Rows are participant-articles, treated as
    independent (see the clustering caveat of ``stats.proportions_by_condition``).
    Conditions with fewer than two ratings are skipped."""
    rows = []
    if reference is None:
        return pd.DataFrame(columns=INDEX_TEST_COLUMNS)
    ref = index.loc[index["condition"] == reference, "index"]
    if len(ref) < 2:
        return pd.DataFrame(columns=INDEX_TEST_COLUMNS)
    for condition in sorted(set(index["condition"]) - {reference}):
        values = index.loc[index["condition"] == condition, "index"]
        if len(values) < 2:
            continue
        welch = stats.t_test(values, ref)
        student = stats.t_test(values, ref, equal_var=True)
        rows.append(
            {
                "condition": condition,
                "reference": reference,
                "difference": welch.difference,
                "welch_t": welch.t,
                "welch_df": welch.df,
                "welch_p": welch.p_value,
                "ci_low": welch.ci_low,
                "ci_high": welch.ci_high,
                "student_t": student.t,
                "student_df": student.df,
                "student_p": student.p_value,
            }
        )
    return pd.DataFrame(rows, columns=INDEX_TEST_COLUMNS)


def detection_summary(
    responses: pd.DataFrame, *, judge: Callable[[str], str | None] = stats.detection_judgement
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-participant detection accuracy (``stats.detection_accuracy``, "I don't know"
    left out of the ratio and reported as a rate) and, per condition, the mean accuracy,
    the pooled hit and false-alarm rates with d' and c (log-linear correction; a "signal"
    is a machine-written article, "I don't know" answers dropped), and Krippendorff's
    nominal alpha (human / machine) among participants over the articles they judged. A last row,
    ``ALL_CONDITIONS``, pools every condition: in a between-subjects design a condition
    holds only human or only machine articles, so d' is defined only there. Input: the
    analysed responses to the detection question; ``judge`` maps an answer to a judgement
    (the question's stored definition, ``studyplatform.measures.scoring.detection_judge``)."""
    people = stats.detection_accuracy(responses, judge=judge)
    conditions = responses.groupby("participant_id")["condition"].first()
    people.insert(1, "condition", people["participant_id"].map(conditions))
    rows = []
    parts = [*responses.groupby("condition", sort=True)]
    if parts:
        parts.append((ALL_CONDITIONS, responses))
    for condition, group in parts:
        judged = group["value"].map(judge)
        decided = group.loc[judged.isin([stats.HUMAN, stats.MACHINE])]
        said_machine = judged.loc[decided.index] == stats.MACHINE
        machine = decided["article_origin"] != "real"
        signal, noise = int(machine.sum()), int((~machine).sum())
        sdt = (
            stats.signal_detection(
                int((said_machine & machine).sum()),
                signal,
                int((said_machine & ~machine).sum()),
                noise,
            )
            if signal and noise
            else None
        )
        # Agreement about the decision: "I don't know" is no code, so it is left out.
        coded = group.assign(judgement=judged).loc[judged.isin([stats.HUMAN, stats.MACHINE])]
        matrix = coded.pivot_table(
            index="participant_id", columns="article_id", values="judgement", aggfunc="first"
        )
        alpha = (
            stats.krippendorff_alpha_nominal(matrix.astype(object).where(matrix.notna(), None))
            if not matrix.empty
            else float("nan")
        )
        mine = (
            people if condition == ALL_CONDITIONS else people.loc[people["condition"] == condition]
        )
        rows.append(
            {
                "condition": condition,
                "participants": len(mine),
                "mean_accuracy": float(mine["accuracy"].mean()),
                "mean_unsure_rate": float(mine["unsure_rate"].mean()),
                "hit_rate": sdt.hit_rate if sdt else float("nan"),
                "false_alarm_rate": sdt.false_alarm_rate if sdt else float("nan"),
                "d_prime": sdt.d_prime if sdt else float("nan"),
                "criterion": sdt.criterion if sdt else float("nan"),
                "krippendorff_alpha": alpha,
            }
        )
    return people, pd.DataFrame(rows, columns=DETECTION_SUMMARY_COLUMNS)


HUMAN_SCORER = "participants"
ALL_GENERATED = "(all generated)"
DEFAULT_SCORE = "mean_logprob"  # the disagreement list ranks articles by this score
DETECTOR_COLUMNS = ["scorer", "condition", *stats.SEPARATION_COLUMNS]
ARTICLE_CREDIBILITY_COLUMNS = [
    "article_id",
    "article_origin",
    "condition",
    "ratings",
    "credible_share",
]
DISAGREEMENT_COLUMNS = [
    "scorer",
    "article_id",
    "title",
    "article_origin",
    "condition",
    "credible_share",
    DEFAULT_SCORE,
    "human_machine_likeness_pct",
    "detector_machine_likeness_pct",
    "gap",
    "abs_gap",
]


def article_credibility(binary: pd.DataFrame) -> pd.DataFrame:
    """Per article: how many analysed answers it got and the share that were "yes"
    (``ARTICLE_CREDIBILITY_COLUMNS``, by article id). Input: the analysed responses to
    the yes/no question (``value_numeric`` 1 = yes, 0 = no; missing values left out).
    ``condition`` joins the conditions the article was rated in with ";"."""
    data = binary.loc[binary["value_numeric"].notna()]
    if data.empty:
        return pd.DataFrame(columns=ARTICLE_CREDIBILITY_COLUMNS)
    table = (
        data.groupby("article_id", sort=True)
        .agg(
            article_origin=("article_origin", "first"),
            condition=("condition", lambda c: ";".join(sorted({str(v) for v in c}))),
            ratings=("value_numeric", "size"),
            credible_share=("value_numeric", "mean"),
        )
        .reset_index()
    )
    return table[ARTICLE_CREDIBILITY_COLUMNS]


def _labelled(table: pd.DataFrame, scorer: str, by: str | None) -> pd.DataFrame:
    table = table.copy()
    if by is None:
        table.insert(0, "condition", ALL_GENERATED)
    table.insert(0, "scorer", scorer)
    return table[DETECTOR_COLUMNS]


def _stack(parts: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    filled = [part for part in parts if not part.empty]
    if not filled:
        return pd.DataFrame(columns=columns)
    return pd.concat(filled, ignore_index=True)[columns]


def detector_tables(
    *, scores: pd.DataFrame, human: pd.DataFrame | None, top: int = 10
) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Participants next to each stored detector score, and where they disagree.

    ``scores``: ``analysis.frames.article_scores_frame``; ``human``: the
    :func:`article_credibility` of the analysed answers (None without a yes/no question).
    Returns (1) ``DETECTOR_COLUMNS``: a "participants" row (``stats.human_separation``,
    the AUC of 1 - credible share) then, per scorer, one row per metric
    (``stats.detector_separation``), each the ROC AUC for telling generated from real
    articles with its DeLong 95% interval, one row per generated condition when the
    study has several (each against all real articles), else one row per score with
    ``condition`` = "(all generated)"; (2) per scorer, the ``top`` articles on which
    participants and ``DEFAULT_SCORE`` disagree most (``DISAGREEMENT_COLUMNS``,
    ``stats.human_detector_disagreements``), or None without human answers.
    """
    conditions = set(scores.loc[scores["article_origin"] == "generated", "condition"])
    if human is not None:
        conditions |= set(human.loc[human["article_origin"] == "generated", "condition"])
    by = "condition" if len(conditions) > 1 else None
    separation: list[pd.DataFrame] = []
    if human is not None and not human.empty:
        separation.append(_labelled(stats.human_separation(human, by=by), HUMAN_SCORER, by))
    disagreements: list[pd.DataFrame] = []
    for scorer, group in scores.groupby("scorer", sort=True):
        # A detector this scorer could not compute (Binoculars without a performer) has
        # no row; the report's notes say why (``detector_gap_notes``).
        metrics = [m for m in SCORE_METRICS if group[m].notna().any()]
        table = stats.detector_separation(group, score_columns=metrics, by=by)
        separation.append(_labelled(table, str(scorer), by))
        if human is None:
            continue
        rated = group.merge(human[["article_id", "credible_share"]], on="article_id", how="left")
        worst = stats.human_detector_disagreements(rated, score_column=DEFAULT_SCORE, top=top)
        details = group[["article_id", "title", "condition", DEFAULT_SCORE]]
        worst = worst.merge(details, on="article_id", how="left").merge(
            human[["article_id", "credible_share"]], on="article_id", how="left"
        )
        worst.insert(0, "scorer", str(scorer))
        disagreements.append(worst[DISAGREEMENT_COLUMNS])
    return (
        _stack(separation, DETECTOR_COLUMNS),
        None if human is None else _stack(disagreements, DISAGREEMENT_COLUMNS),
    )


# ---------------------------------------------------------------------------------------
# More than two conditions (analysis.stats.groups, analysis.stats.exact)


def group_tests(
    binary: pd.DataFrame, *, method: str
) -> tuple[stats.ContingencyTest | None, pd.DataFrame]:
    """With three or more conditions: the omnibus chi-square of equal "yes" shares across
    all of them (``stats.omnibus_proportions``, R ``prop.test`` with k groups) and every
    pair of conditions compared (``stats.pairwise_proportions``, R ``pairwise.prop.test``)
    with the study's preregistered correction ``method`` ("holm" or "bh"). With fewer
    conditions the comparisons with the reference say it all: (None, empty table)."""
    data = binary.loc[binary["value_numeric"].notna()]
    if data["condition"].nunique() < 3:
        return None, pd.DataFrame(columns=stats.PAIRWISE_COLUMNS)
    return stats.omnibus_proportions(data), stats.pairwise_proportions(data, method=method)


def answer_tests(
    responses: pd.DataFrame, *, questions: list[tuple[str, list[str]]]
) -> list[tuple[str, stats.ContingencyTest]]:
    """For each multi-option question about the articles (``questions``: key and its
    options, in order), the r x c chi-square of its answers by condition
    (``stats.contingency_test`` on ``stats.answers_by_condition``, R ``chisq.test``), when
    at least two conditions have answers. Each rating is one count: with several articles
    per participant the counts are not independent and the p-value is too small."""
    tests = []
    for key, options in questions:
        answers = responses.loc[responses["question_key"] == key]
        table = stats.answers_by_condition(answers, options)
        if len(table) >= 2 and table.to_numpy().sum() > 0:
            tests.append((key, stats.contingency_test(table)))
    return tests


DETECTION_BINOMIAL_COLUMNS = [
    "condition",
    "correct",
    "decided",
    "accuracy",
    "ci_low",
    "ci_high",
    "null_value",
    "p_value",
]


def detection_binomial(people: pd.DataFrame, null_value: float = 0.5) -> pd.DataFrame:
    """Per condition and over all (``ALL_CONDITIONS``): the share of decided answers that
    were right, tested against ``null_value`` (guessing) with the exact binomial test
    (``stats.binomial_test``, R ``binom.test``; two-sided, Clopper-Pearson interval).
    Input: the per-participant table of :func:`detection_summary` (``correct``,
    ``decided``, ``condition``). Every decided answer counts as one trial, so answers of
    one participant are treated as independent (the test is then somewhat liberal)."""
    rows = []
    parts = [*people.groupby("condition", sort=True)]
    if parts:
        parts.append((ALL_CONDITIONS, people))
    for condition, group in parts:
        correct, decided = int(group["correct"].sum()), int(group["decided"].sum())
        if decided == 0:
            continue
        test = stats.binomial_test(correct, decided, null_value)
        rows.append(
            {
                "condition": condition,
                "correct": correct,
                "decided": decided,
                "accuracy": test.share,
                "ci_low": test.ci_low,
                "ci_high": test.ci_high,
                "null_value": null_value,
                "p_value": test.p_value,
            }
        )
    return pd.DataFrame(rows, columns=DETECTION_BINOMIAL_COLUMNS)


def with_participant_d_prime(
    summary: pd.DataFrame,
    responses: pd.DataFrame,
    *,
    judge: Callable[[str], str | None] = stats.detection_judgement,
) -> pd.DataFrame:
    """The detection summary with, next to its pooled ``d_prime``, the mean of each
    participant's own d' (``stats.participant_d_prime``) over the same answers as the
    pooled one (the condition's, or all for ``ALL_CONDITIONS``) as
    ``mean_participant_d_prime``, and how many participants had one
    (``d_prime_participants``: those who decided about both human and machine-written
    articles there; none in a between-subjects design, where d' is defined over all
    conditions only)."""
    means, counts = [], []
    for condition in summary["condition"]:
        group = (
            responses
            if condition == ALL_CONDITIONS
            else responses.loc[responses["condition"] == condition]
        )
        own = stats.participant_d_prime(group, judge=judge)["d_prime"].dropna()
        means.append(float(own.mean()) if len(own) else float("nan"))
        counts.append(len(own))
    return summary.assign(mean_participant_d_prime=means, d_prime_participants=counts)


PEOPLE_VS_DETECTOR_COLUMNS = [
    "scorer",
    "score",
    "direction",
    "candidates",
    "auc_detector",
    "auc_people",
    "difference",
    "se",
    "ci_low",
    "ci_high",
    "z",
    "p_value",
    "p_adjusted",
    "n_pos",
    "n_neg",
    "method",
]
BEST_DISAGREEMENT_COLUMNS = [
    "scorer",
    "score",
    "article_id",
    "title",
    "article_origin",
    "condition",
    "credible_share",
    "score_value",
    "human_machine_likeness_pct",
    "detector_machine_likeness_pct",
    "gap",
    "abs_gap",
]
BEST_DETECTOR_METHOD = (
    "best = the detector score with the highest AUC on the articles people rated; "
    "p_adjusted = Bonferroni over the candidate scores, since the best was chosen on "
    "the same articles"
)


def _paired_candidates(
    scores: pd.DataFrame, human: pd.DataFrame
) -> list[tuple[float, str, str, pd.DataFrame]]:
    """(AUC, scorer, metric, articles with both values) for every scorer x metric whose
    AUC can be computed on the articles people rated (two of each origin at least)."""
    shares = human[["article_id", "credible_share"]].dropna()
    found: list[tuple[float, str, str, pd.DataFrame]] = []
    for scorer, group in scores.groupby("scorer", sort=True):
        both = group.merge(shares, on="article_id", how="inner")
        for metric in SCORE_METRICS:
            rows = both.loc[both[metric].notna()]
            generated = int((rows["article_origin"] == "generated").sum())
            if generated < 2 or len(rows) - generated < 2:
                continue
            result = stats.roc_auc(
                rows[metric].to_numpy(dtype=float),
                (rows["article_origin"] == "generated").to_numpy(dtype=int),
                higher_means_positive=stats.DETECTOR_DIRECTIONS.get(metric) != stats.LOWER,
            )
            found.append((result.auc, str(scorer), metric, rows))
    return found


def people_versus_best_detector(
    *, scores: pd.DataFrame, human: pd.DataFrame | None, top: int = 10
) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """Does the best detector tell generated from real articles better than people do,
    on the same articles? And where do the two disagree most?

    ``scores``: ``analysis.frames.article_scores_frame``; ``human``: the
    :func:`article_credibility` of the analysed answers. Candidates: every scorer x
    detector score with two or more generated and real articles that people also rated
    (all generated conditions together); the best is the one with the highest AUC
    (ties: the first by scorer name, then ``SCORE_METRICS`` order). Returns (1)
    ``PEOPLE_VS_DETECTOR_COLUMNS``, one row: DeLong's paired test of the best
    detector's AUC against the participants' (AUC of 1 - credible share) on those
    articles (``stats.delong_paired_test``; difference = detector - people), with
    ``p_adjusted`` = min(1, p x candidates), Bonferroni, because choosing the best on
    the same articles favours the detector; (2) the ``top`` articles on which people and
    that score disagree most (``BEST_DISAGREEMENT_COLUMNS``,
    ``stats.human_detector_disagreements``). (None, None) without human answers or
    without a candidate.
    """
    if human is None or human.empty or scores.empty:
        return None, None
    candidates = _paired_candidates(scores, human)
    if not candidates:
        return None, None
    best_auc = max(auc for auc, *_ in candidates)
    _, scorer, metric, rows = next(c for c in candidates if c[0] == best_auc)
    direction = stats.DETECTOR_DIRECTIONS.get(metric, stats.HIGHER)
    test = stats.delong_paired_test(
        rows[metric].to_numpy(dtype=float),
        1.0 - rows["credible_share"].to_numpy(dtype=float),
        (rows["article_origin"] == "generated").to_numpy(dtype=int),
        first_higher_means_positive=direction == stats.HIGHER,
    )
    p_adjusted = min(1.0, test.p_value * len(candidates)) if np.isfinite(test.p_value) else np.nan
    table = pd.DataFrame(
        [
            {
                "scorer": scorer,
                "score": metric,
                "direction": direction,
                "candidates": len(candidates),
                "auc_detector": test.auc_first,
                "auc_people": test.auc_second,
                "difference": test.difference,
                "se": test.se,
                "ci_low": test.ci_low,
                "ci_high": test.ci_high,
                "z": test.z,
                "p_value": test.p_value,
                "p_adjusted": p_adjusted,
                "n_pos": test.n_pos,
                "n_neg": test.n_neg,
                "method": f"{test.method}; {BEST_DETECTOR_METHOD}",
            }
        ],
        columns=PEOPLE_VS_DETECTOR_COLUMNS,
    )
    worst = stats.human_detector_disagreements(rows, score_column=metric, top=top)
    worst = worst.merge(
        rows[["article_id", "title", "condition", "credible_share", metric]],
        on="article_id",
        how="left",
    ).rename(columns={metric: "score_value"})
    worst.insert(0, "score", metric)
    worst.insert(0, "scorer", scorer)
    return table, worst[BEST_DISAGREEMENT_COLUMNS]


DETECTOR_NAMES = {"fast_detectgpt": "Fast-DetectGPT", "binoculars": "Binoculars"}


def detector_gap_notes(gaps: pd.DataFrame) -> list[str]:
    """One line per scorer x detector x reason of ``analysis.frames.detector_gaps``: why
    a detector has no score for some of the study's articles."""
    return [
        f"{DETECTOR_NAMES.get(str(row.detector), str(row.detector))} with scorer "
        f'"{row.scorer}" is missing for {cell_int(row.articles)} article(s): {row.reason}.'
        for row in gaps.itertuples(index=False)
    ]


# ---------------------------------------------------------------------------------------
# A replication against a published result (analysis.stats.replication)

REPLICATION_COLUMNS = [
    "condition",
    "reference",
    # The original study's report (NaN where it gave none).
    "original_share",
    "original_n",
    "original_reference_share",
    "original_reference_n",
    "original_difference",
    # This study: the condition's share with its Wilson interval, the difference to the
    # reference with its Newcombe interval (NaN before there are answers); ``ratings`` is
    # the condition's number of answers (a float, NaN without any).
    "ratings",
    "share",
    "ci_low",
    "ci_high",
    "difference",
    "diff_ci_low",
    "diff_ci_high",
    # Small telescopes: Cohen's h; h33 signed as the original effect; p one-sided.
    "original_h",
    "h33",
    "d33_difference",
    "replication_h",
    "telescope_z",
    "telescope_p",
    # TOST against +/- equivalence_bound (NaN without a bound).
    "equivalence_bound",
    "tost_z_lower",
    "tost_p_lower",
    "tost_z_upper",
    "tost_p_upper",
    "tost_p",
]


def replication_table(
    *,
    proportions: pd.DataFrame,
    comparisons: pd.DataFrame,
    reference: str,
    originals: dict[str, tuple[float | None, int | None]],
    bound: float | None,
) -> pd.DataFrame:
    """One row per condition other than ``reference`` in ``originals`` (name to the
    original study's credible rate and sample size, either None when not reported):
    the original estimate, this study's (``proportions``, ``comparisons``) and the two
    replication tests, ``REPLICATION_COLUMNS``. The small-telescopes test needs the
    original rates and sizes of the condition and the reference and answers in both
    here; the TOST needs ``bound`` and answers in both. What cannot be computed is NaN."""
    nan = float("nan")
    counts = {
        str(row.condition): (cell_int(row.successes), cell_int(row.n), row)
        for row in proportions.itertuples(index=False)
    }
    differences = {str(row.condition): row for row in comparisons.itertuples(index=False)}
    ref_rate, ref_n = originals.get(reference, (None, None))
    rows = []
    for condition, (rate, n_original) in originals.items():
        if condition == reference:
            continue
        row: dict[str, object] = dict.fromkeys(REPLICATION_COLUMNS, nan)
        row.update(condition=condition, reference=reference, equivalence_bound=bound or nan)
        row.update(
            original_share=rate if rate is not None else nan,
            original_n=n_original if n_original is not None else nan,
            original_reference_share=ref_rate if ref_rate is not None else nan,
            original_reference_n=ref_n if ref_n is not None else nan,
        )
        if rate is not None and ref_rate is not None:
            row["original_difference"] = rate - ref_rate
        here, there = counts.get(condition), counts.get(reference)
        if here is not None:
            row.update(ratings=here[1], share=here[2].share, ci_low=here[2].ci_low)
            row["ci_high"] = here[2].ci_high
        if condition in differences:
            compared = differences[condition]
            row.update(difference=compared.difference, diff_ci_low=compared.ci_low)
            row["diff_ci_high"] = compared.ci_high
        if here is not None and there is not None:
            observed = {
                "successes": here[0],
                "n": here[1],
                "reference_successes": there[0],
                "reference_n": there[1],
            }
            if (
                rate is not None
                and ref_rate is not None
                and n_original is not None
                and ref_n is not None
                and rate != ref_rate
            ):
                telescope = stats.small_telescopes(
                    original_rate=rate,
                    original_n=n_original,
                    original_reference_rate=ref_rate,
                    original_reference_n=ref_n,
                    **observed,
                )
                row.update(
                    original_h=telescope.original_h,
                    h33=telescope.h33,
                    d33_difference=telescope.d33_difference,
                    replication_h=telescope.replication_h,
                    telescope_z=telescope.z,
                    telescope_p=telescope.p_value,
                )
            if bound is not None:
                tost = stats.equivalence_test(bound=bound, **observed)
                row.update(
                    tost_z_lower=tost.z_lower,
                    tost_p_lower=tost.p_lower,
                    tost_z_upper=tost.z_upper,
                    tost_p_upper=tost.p_upper,
                    tost_p=tost.p_value,
                )
        rows.append(row)
    return pd.DataFrame(rows, columns=REPLICATION_COLUMNS)
