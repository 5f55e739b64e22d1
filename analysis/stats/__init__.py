"""Statistics for credibility studies: pure functions over numbers and DataFrames.

Nothing here imports Django's ORM or touches I/O, so every function can be checked
against published reference values (see tests/analysis/test_stats*.py) and reused from a
notebook. One module per kind of analysis; this package re-exports their public names,
so callers write ``stats.wilson_interval(...)``:

- :mod:`~analysis.stats.proportions`: one and two proportions, per-condition tables;
- :mod:`~analysis.stats.regression`: participant-clustered logistic regression, moderators;
- :mod:`~analysis.stats.mixed`: mixed-effects logistic regression (participants x articles);
- :mod:`~analysis.stats.scales`: the credibility index, means, t/ANOVA/Kruskal-Wallis, alpha;
- :mod:`~analysis.stats.detection`: detection accuracy, d', Krippendorff's alpha;
- :mod:`~analysis.stats.separation`: detector scores against human judgements (ROC AUC);
- :mod:`~analysis.stats.groups`: more than two conditions (omnibus and pairwise tests with
  Holm or Benjamini-Hochberg, the r x c chi-square);
- :mod:`~analysis.stats.exact`: Fisher's exact test with one-sided alternatives and the
  conditional odds ratio, the exact binomial test against a stated value;
- :mod:`~analysis.stats.paired_auc`: two correlated AUCs on the same items (DeLong's paired test);
- :mod:`~analysis.stats.replication`: a replication against a published result
  (Simonsohn's small telescopes, the TOST equivalence test).

Conventions:
- Proportions are "successes out of n" with integer counts; a binary answer is 1 (yes,
  e.g. "credible") or 0 (no).
- Differences are always ``p1 - p2``; in :func:`compare_to_reference` that is
  ``condition - reference``, so a negative difference means "rated credible less often than
  the reference (real) articles".
- Intervals are two-sided at ``confidence`` (default 95%).
"""

from __future__ import annotations

from analysis.stats.detection import (
    DETECTION_COLUMNS,
    HUMAN,
    MACHINE,
    PARTICIPANT_D_PRIME_COLUMNS,
    UNSURE,
    SignalDetection,
    detection_accuracy,
    detection_judgement,
    krippendorff_alpha_nominal,
    participant_d_prime,
    signal_detection,
)
from analysis.stats.exact import (
    ALTERNATIVES,
    BinomialTest,
    FisherTest,
    binomial_test,
    fisher_exact_test,
)
from analysis.stats.groups import (
    ADJUSTMENT_NAMES,
    ADJUSTMENTS,
    BH,
    HOLM,
    PAIRWISE_COLUMNS,
    ContingencyTest,
    answers_by_condition,
    contingency_test,
    k_proportions_test,
    omnibus_proportions,
    p_adjust,
    pairwise_proportions,
)
from analysis.stats.mixed import (
    MIXED_METHOD,
    RANDOM_EFFECT_COLUMNS,
    MixedLogisticFit,
    mixed_logistic_regression,
)
from analysis.stats.paired_auc import PAIRED_AUC_METHOD, PairedAucTest, delong_paired_test
from analysis.stats.proportions import (
    COMPARISON_COLUMNS,
    PROPORTION_COLUMNS,
    ChiSquareTest,
    OddsRatio,
    TwoProportionTest,
    chi_square_test,
    clopper_pearson_interval,
    cohens_h,
    compare_to_reference,
    fisher_exact_p,
    holm_adjust,
    newcombe_interval,
    odds_ratio,
    proportions_by_condition,
    two_proportion_ztest,
    wilson_interval,
    wilson_interval_arrays,
)
from analysis.stats.regression import (
    INTERCEPT,
    LOGISTIC_COLUMNS,
    LogisticFit,
    ModeratorFit,
    logistic_regression,
    moderator_logistic_regression,
)
from analysis.stats.replication import (
    TELESCOPE_POWER,
    Equivalence,
    SmallTelescope,
    equivalence_test,
    small_telescopes,
)
from analysis.stats.scales import (
    CREDIBILITY_ITEMS,
    INDEX_COLUMNS,
    LIKERT_COLUMNS,
    MEAN_COLUMNS,
    GroupTest,
    TTest,
    credibility_index,
    cronbach_alpha,
    kruskal_wallis,
    likert_means,
    means_by_condition,
    one_way_anova,
    t_test,
)
from analysis.stats.separation import (
    AUC_METHOD,
    DETECTOR_DIRECTIONS,
    DISAGREEMENT_COLUMNS,
    HIGHER,
    HUMAN_SCORE,
    LOWER,
    SEPARATION_COLUMNS,
    AucResult,
    detector_separation,
    human_detector_disagreements,
    human_separation,
    roc_auc,
)

# Power and sample size live in studyplatform.measures.planning (pure, standard library
# only) so that the study admin's planning box, which may not import analysis, uses the
# very same formulas.
from studyplatform.measures.planning import power_two_proportions, sample_size_two_proportions

__all__ = [
    "ADJUSTMENTS",
    "ADJUSTMENT_NAMES",
    "ALTERNATIVES",
    "AUC_METHOD",
    "BH",
    "COMPARISON_COLUMNS",
    "CREDIBILITY_ITEMS",
    "DETECTION_COLUMNS",
    "DETECTOR_DIRECTIONS",
    "DISAGREEMENT_COLUMNS",
    "HIGHER",
    "HOLM",
    "HUMAN",
    "HUMAN_SCORE",
    "INDEX_COLUMNS",
    "INTERCEPT",
    "LIKERT_COLUMNS",
    "LOGISTIC_COLUMNS",
    "LOWER",
    "MACHINE",
    "MEAN_COLUMNS",
    "MIXED_METHOD",
    "PAIRED_AUC_METHOD",
    "PAIRWISE_COLUMNS",
    "PARTICIPANT_D_PRIME_COLUMNS",
    "PROPORTION_COLUMNS",
    "RANDOM_EFFECT_COLUMNS",
    "SEPARATION_COLUMNS",
    "TELESCOPE_POWER",
    "UNSURE",
    "AucResult",
    "BinomialTest",
    "ChiSquareTest",
    "ContingencyTest",
    "Equivalence",
    "FisherTest",
    "GroupTest",
    "LogisticFit",
    "MixedLogisticFit",
    "ModeratorFit",
    "OddsRatio",
    "PairedAucTest",
    "SignalDetection",
    "SmallTelescope",
    "TTest",
    "TwoProportionTest",
    "answers_by_condition",
    "binomial_test",
    "chi_square_test",
    "clopper_pearson_interval",
    "cohens_h",
    "compare_to_reference",
    "contingency_test",
    "credibility_index",
    "cronbach_alpha",
    "delong_paired_test",
    "detection_accuracy",
    "detection_judgement",
    "detector_separation",
    "equivalence_test",
    "fisher_exact_p",
    "fisher_exact_test",
    "holm_adjust",
    "human_detector_disagreements",
    "human_separation",
    "k_proportions_test",
    "krippendorff_alpha_nominal",
    "kruskal_wallis",
    "likert_means",
    "logistic_regression",
    "means_by_condition",
    "mixed_logistic_regression",
    "moderator_logistic_regression",
    "newcombe_interval",
    "odds_ratio",
    "omnibus_proportions",
    "one_way_anova",
    "p_adjust",
    "pairwise_proportions",
    "participant_d_prime",
    "power_two_proportions",
    "proportions_by_condition",
    "roc_auc",
    "sample_size_two_proportions",
    "signal_detection",
    "small_telescopes",
    "t_test",
    "two_proportion_ztest",
    "wilson_interval",
    "wilson_interval_arrays",
]
