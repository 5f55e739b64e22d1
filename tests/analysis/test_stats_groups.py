"""More than two conditions, exact tests, per-participant d' and continuity-corrected
planning, against R's documented output (never against the functions themselves).

Sources (R 4.x help pages; the printed values are quoted in each test):
- [R-prop] ?prop.test: smokers <- c(83, 90, 129, 70); patients <- c(86, 93, 136, 82);
  prop.test(smokers, patients) -> X-squared = 12.6, df = 3, p-value = 0.005585.
- [R-pairwise] ?pairwise.prop.test on the same data (Holm): 2-1 1.000, 3-1 1.000,
  4-1 0.119, 3-2 1.000, 4-2 0.093, 4-3 0.124.
- [R-chisq] ?chisq.test, Agresti (2007) p. 39: M <- as.table(rbind(c(762, 327, 468),
  c(484, 239, 477))) -> X-squared = 30.07, df = 2, p-value = 2.954e-07.
- [R-fisher] ?fisher.test: TeaTasting matrix(c(3, 1, 1, 3), 2), alternative = "greater"
  -> p-value = 0.2429, 95 percent CI 0.3135693 Inf, odds ratio 6.408309; Convictions
  matrix(c(2, 10, 15, 3), 2), alternative = "less" -> p-value = 0.0004652, CI
  0.0000000 0.2849601, odds ratio 0.04693661; two-sided p-value = 0.0005367,
  conf.int 0.003325764 0.363182271.
- [R-binom] ?binom.test (Mendel's peas): binom.test(682, 925, p = 0.75) -> p-value =
  0.3825, 95 percent CI 0.7076683 0.7654066, probability of success 0.7372973.
- [BH95] Benjamini & Hochberg (1995), JRSS B 57:289-300, sec. 4: the 15 p-values of
  the example; at q = 0.05 the step-up procedure rejects the four smallest, Bonferroni
  and Holm's step-down only the three smallest. Adjusted values by hand from
  p.adjust's definitions (BH: min_{j>=i} m p_(j) / j; Holm: max_{j<=i} (m-j+1) p_(j)).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from analysis import stats
from studyplatform.measures.planning import sample_size_two_proportions

SMOKERS = [83, 90, 129, 70]
PATIENTS = [86, 93, 136, 82]


def _binary_frame(successes: list[int], totals: list[int], names: list[str]) -> pd.DataFrame:
    rows = []
    for name, x, n in zip(names, successes, totals, strict=True):
        rows += [{"condition": name, "value_numeric": 1.0}] * x
        rows += [{"condition": name, "value_numeric": 0.0}] * (n - x)
    return pd.DataFrame(rows)


# ---------------------------------------------------------------------------------------
# Omnibus and pairwise


def test_k_group_test_matches_r_prop_test_smokers():
    test = stats.k_proportions_test(SMOKERS, PATIENTS)
    assert test.statistic == pytest.approx(12.6, abs=0.05)  # printed to 3 digits
    assert test.df == 3
    assert test.p_value == pytest.approx(0.005585, abs=0.5e-6)
    assert not test.correction  # R applies Yates only with two groups


def test_omnibus_from_answers_is_the_same_test():
    frame = _binary_frame(SMOKERS, PATIENTS, ["a", "b", "c", "d"])
    test = stats.omnibus_proportions(frame)
    assert test.p_value == pytest.approx(0.005585, abs=0.5e-6)
    assert test.rows == ("a", "b", "c", "d")
    assert test.observed[3] == (70, 12)


def test_pairwise_holm_matches_r_pairwise_prop_test():
    frame = _binary_frame(SMOKERS, PATIENTS, ["1", "2", "3", "4"])
    table = stats.pairwise_proportions(frame, method="holm")
    got = {(r.condition, r.other): r.p_adjusted for r in table.itertuples()}
    printed = {
        ("1", "2"): 1.0,
        ("1", "3"): 1.0,
        ("1", "4"): 0.119,
        ("2", "3"): 1.0,
        ("2", "4"): 0.093,
        ("3", "4"): 0.124,
    }
    assert got.keys() == printed.keys()
    for pair, value in printed.items():
        assert got[pair] == pytest.approx(value, abs=0.5e-3), pair
    first = table.iloc[0]
    assert first["difference"] == pytest.approx(83 / 86 - 90 / 93)
    assert set(table["adjustment"]) == {"holm"}


def test_pairwise_bh_is_never_larger_than_holm():
    frame = _binary_frame([30, 45, 60], [100, 100, 100], ["a", "b", "c"])
    holm = stats.pairwise_proportions(frame, method="holm")
    bh = stats.pairwise_proportions(frame, method="bh")
    assert (bh["p_adjusted"] <= holm["p_adjusted"] + 1e-12).all()
    assert (bh["p_adjusted"] >= bh["p_value"]).all()
    with pytest.raises(ValueError, match="unknown adjustment"):
        stats.pairwise_proportions(frame, method="bonferroni")


BH_EXAMPLE = [
    0.0001, 0.0004, 0.0019, 0.0095, 0.0201, 0.0278, 0.0298, 0.0344,
    0.0459, 0.3240, 0.4262, 0.5719, 0.6528, 0.7590, 1.0000,
]  # fmt: skip


def test_bh_adjustment_matches_the_benjamini_hochberg_example():
    adjusted = stats.p_adjust(BH_EXAMPLE, method="bh")
    assert int((adjusted <= 0.05).sum()) == 4  # [BH95]: four hypotheses rejected
    expected_head = [0.0015, 0.003, 0.0095, 0.035625, 0.0603, 0.0638571, 0.0638571]
    assert adjusted[:7] == pytest.approx(expected_head, abs=1e-6)
    assert adjusted[-1] == 1.0


def test_holm_adjustment_matches_the_benjamini_hochberg_example():
    adjusted = stats.p_adjust(BH_EXAMPLE, method="holm")
    assert int((adjusted <= 0.05).sum()) == 3  # [BH95]: Holm rejects three
    assert adjusted[:4] == pytest.approx([0.0015, 0.0056, 0.0247, 0.114], abs=1e-9)


def test_p_adjust_keeps_nan_out_of_the_count():
    adjusted = stats.p_adjust([0.01, math.nan, 0.04], method="bh")
    assert math.isnan(adjusted[1])
    assert adjusted[[0, 2]] == pytest.approx([0.02, 0.04])


# ---------------------------------------------------------------------------------------
# r x c


def test_r_by_c_chi_square_matches_r_chisq_test():
    table = pd.DataFrame(
        [[762, 327, 468], [484, 239, 477]],
        index=["F", "M"],
        columns=["Democrat", "Independent", "Republican"],
    )
    test = stats.contingency_test(table)
    assert test.statistic == pytest.approx(30.07, abs=0.005)
    assert test.df == 2
    assert test.p_value == pytest.approx(2.954e-07, rel=2e-4)
    assert not test.correction
    assert test.columns == ("Democrat", "Independent", "Republican")
    # Cramer's V by its definition, sqrt(X^2 / (n (min(r, c) - 1))).
    assert test.cramers_v == pytest.approx(math.sqrt(30.070149 / 2757), rel=1e-6)


def test_r_by_c_drops_empty_options_and_is_undefined_with_one_row():
    table = pd.DataFrame([[762, 0, 468], [484, 0, 477]], columns=["D", "never", "R"])
    test = stats.contingency_test(table)
    assert test.columns == ("D", "R")
    assert test.df == 1
    one_row = stats.contingency_test(pd.DataFrame([[3, 4]]))
    assert math.isnan(one_row.statistic)
    assert math.isnan(one_row.p_value)
    with pytest.raises(ValueError, match="whole counts"):
        stats.contingency_test([[1.5, 2], [3, 4]])


def test_answers_by_condition_counts_options_in_their_order():
    frame = pd.DataFrame(
        {
            "condition": ["real", "real", "gpt2", "gpt2", "gpt2", "gpt2"],
            "value": ["Human", "Machine", "Machine", "Machine", None, "Not an option"],
        }
    )
    table = stats.answers_by_condition(frame, ["Human", "Unsure", "Machine"])
    assert list(table.columns) == ["Human", "Unsure", "Machine"]
    assert list(table.index) == ["gpt2", "real"]
    assert table.loc["gpt2"].tolist() == [0, 0, 2]
    assert table.loc["real"].tolist() == [1, 0, 1]


# ---------------------------------------------------------------------------------------
# Exact tests


def test_fisher_one_sided_greater_matches_r_tea_tasting():
    test = stats.fisher_exact_test(3, 4, 1, 4, alternative="greater")
    assert test.p_value == pytest.approx(0.2429, abs=0.5e-4)
    # scipy and R find the conditional MLE and the interval by different root finders:
    # they agree to about 1e-5 relative.
    assert test.odds_ratio == pytest.approx(6.408309, rel=1e-5)
    assert test.ci_low == pytest.approx(0.3135693, rel=5e-5)
    assert test.ci_high == math.inf


def test_fisher_one_sided_less_and_two_sided_match_r_convictions():
    less = stats.fisher_exact_test(2, 17, 10, 13, alternative="less")
    assert less.p_value == pytest.approx(0.0004652, abs=0.5e-7)
    assert less.odds_ratio == pytest.approx(0.04693661, rel=1e-5)
    assert less.ci_low == 0.0
    assert less.ci_high == pytest.approx(0.2849601, rel=1e-5)
    both = stats.fisher_exact_test(2, 17, 10, 13)
    assert both.p_value == pytest.approx(0.0005367, abs=0.5e-7)
    # The lower limit is where the root finders differ most (0.3% at 0.0033).
    assert both.ci_low == pytest.approx(0.003325764, rel=5e-3)
    assert both.ci_high == pytest.approx(0.363182271, rel=1e-4)


def test_fisher_rejects_an_unknown_alternative():
    with pytest.raises(ValueError, match="alternative"):
        stats.fisher_exact_test(3, 4, 1, 4, alternative="bigger")  # type: ignore[arg-type]


def test_binomial_test_matches_r_binom_test_peas():
    test = stats.binomial_test(682, 925, null_value=0.75)
    assert test.p_value == pytest.approx(0.3825, abs=0.5e-4)
    assert test.ci_low == pytest.approx(0.7076683, abs=0.5e-7)
    assert test.ci_high == pytest.approx(0.7654066, abs=0.5e-7)
    assert test.share == pytest.approx(0.7372973, abs=0.5e-7)


def test_binomial_test_one_sided_has_a_one_sided_interval():
    test = stats.binomial_test(682, 925, null_value=0.75, alternative="less")
    assert test.ci_low == 0.0
    assert test.p_value < 0.3825  # the observed share is below 0.75: the less tail
    with pytest.raises(ValueError, match="between 0 and 1"):
        stats.binomial_test(3, 10, null_value=1.5)


# ---------------------------------------------------------------------------------------
# d' per participant


def test_participant_d_prime_uses_each_persons_own_rates():
    # Person 1 calls 7 of 9 machine articles machine and 2 of 9 human ones machine:
    # log-linear rates (7.5/10, 2.5/10) = (0.75, 0.25), d' = 2 z(0.75) = 1.3489795.
    # Person 2 only judged machine articles: no false-alarm rate, no d'.
    rows = []
    for i in range(9):
        rows.append(("p1", "generated", "Machine" if i < 7 else "Human"))
        rows.append(("p1", "real", "Machine" if i < 2 else "Human"))
        rows.append(("p2", "generated", "Machine"))
    rows.append(("p1", "real", "I don't know"))
    frame = pd.DataFrame(rows, columns=["participant_id", "article_origin", "value"])

    def judge(value: str) -> str | None:
        return {"Machine": stats.MACHINE, "Human": stats.HUMAN}.get(value, stats.UNSURE)

    table = stats.participant_d_prime(frame, judge=judge).set_index("participant_id")
    assert table.loc["p1", "d_prime"] == pytest.approx(2 * 0.6744898, abs=1e-6)
    assert table.loc["p1", "noise_trials"] == 9  # "I don't know" is not a trial
    assert math.isnan(table.loc["p2", "d_prime"])


# ---------------------------------------------------------------------------------------
# Planning with continuity correction


def _exact_power_yates(p1: float, p2: float, n: int, alpha: float = 0.05) -> float:
    """Exact power of the Yates-corrected chi-square test (R prop.test's default) with n
    per group: the probability, over both binomial outcomes, of rejecting at alpha."""
    x = np.arange(n + 1)
    a, c = x[:, None], x[None, :]
    b, d = n - a, n - c
    yes, no = a + c, b + d
    with np.errstate(divide="ignore", invalid="ignore"):
        gap = np.maximum(np.abs(a * d - b * c) - n, 0.0)  # |ad - bc| - N/2 with N = 2n
        chi2 = np.nan_to_num(2 * n * gap**2 / (n * n * yes * no))
    weights = sps.binom.pmf(x, n, p1)[:, None] * sps.binom.pmf(x, n, p2)[None, :]
    return float((weights * (chi2 > sps.chi2.ppf(1 - alpha, 1))).sum())


def test_continuity_corrected_n_follows_fleiss_tytun_ury():
    plain = sample_size_two_proportions(0.83, 0.72)
    corrected = sample_size_two_proportions(0.83, 0.72, continuity_correction=True)
    # n' = n/4 (1 + sqrt(1 + 4 / (n |d|)))^2 with n = 225.04 and |d| = 0.11, by hand.
    assert corrected == pytest.approx(242.88, abs=0.01)
    assert corrected - plain == pytest.approx(2 / 0.11, rel=0.05)


def test_continuity_corrected_n_gives_the_yates_test_its_power():
    plain = math.ceil(sample_size_two_proportions(0.83, 0.72))
    corrected = math.ceil(sample_size_two_proportions(0.83, 0.72, continuity_correction=True))
    # R's prop.test corrects by default: at the uncorrected n it falls short of 80%,
    # at the corrected n it reaches it (exact binomial enumeration, no approximation).
    assert _exact_power_yates(0.83, 0.72, plain) < 0.78
    assert _exact_power_yates(0.83, 0.72, corrected) == pytest.approx(0.80, abs=0.01)
