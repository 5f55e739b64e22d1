"""The logistic mixed model with crossed random intercepts, against published fits.

Sources:
- [lme4-cbpp] lme4's own example, ``glmer(cbind(incidence, size - incidence) ~ period +
  (1 | herd), family = binomial, data = cbpp)`` (?glmer; summary reproduced in many course
  notes): fixed effects -1.3983 (0.2312), -0.9919 (0.3032), -1.1282 (0.3228),
  -1.5797 (0.4220); herd SD 0.6421; logLik -92.0 (the binomial counts) and -277.5 when
  the same data are expanded to 842 Bernoulli rows (the estimates are identical: the
  binomial coefficients are a constant). lme4's default optimiser stops up to 7e-4 short
  of the optimum and its default Hessian-based errors differ from the information-based
  ones by about 1%.
- [MixedModels.jl] the same model (842 Bernoulli rows, nAGQ = 1) in Julia's
  MixedModels.jl, as printed in the lme-rs comparison (github.com, "lme-rs" README,
  Binomial 4): coefficients -1.39853, -0.992335, -1.12867, -1.58031, standard errors
  0.227891, 0.305385, 0.326049, 0.428795 (from the fixed-effects information, as here),
  herd SD 0.642036.
- Data: lme4 ``cbpp`` (56 rows: herd, incidence, size, period), as listed in the
  Rdatasets mirror (atifaziz/Rdatasets.cs, src/Rdatasets/lme4/cbpp.cs).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis import stats
from analysis.stats import mixed, regression
from tests.analysis.simulated_ratings import Design, simulate_ratings

CBPP = [  # herd, incidence, size, period
    (1, 2, 14, 1), (1, 3, 12, 2), (1, 4, 9, 3), (1, 0, 5, 4), (2, 3, 22, 1), (2, 1, 18, 2),
    (2, 1, 21, 3), (3, 8, 22, 1), (3, 2, 16, 2), (3, 0, 16, 3), (3, 2, 20, 4), (4, 2, 10, 1),
    (4, 0, 10, 2), (4, 2, 9, 3), (4, 0, 6, 4), (5, 5, 18, 1), (5, 0, 25, 2), (5, 0, 24, 3),
    (5, 1, 4, 4), (6, 3, 17, 1), (6, 0, 17, 2), (6, 0, 18, 3), (6, 1, 20, 4), (7, 8, 16, 1),
    (7, 1, 10, 2), (7, 3, 9, 3), (7, 0, 5, 4), (8, 12, 34, 1), (9, 2, 9, 1), (9, 0, 6, 2),
    (9, 0, 8, 3), (9, 0, 6, 4), (10, 1, 22, 1), (10, 1, 22, 2), (10, 0, 18, 3),
    (10, 2, 22, 4), (11, 0, 25, 1), (11, 5, 27, 2), (11, 3, 22, 3), (11, 1, 22, 4),
    (12, 2, 10, 1), (12, 1, 8, 2), (12, 0, 6, 3), (12, 0, 5, 4), (13, 1, 21, 1),
    (13, 2, 24, 2), (13, 0, 19, 3), (13, 0, 23, 4), (14, 11, 19, 1), (14, 0, 2, 2),
    (14, 0, 3, 3), (14, 0, 2, 4), (15, 1, 19, 1), (15, 1, 15, 2), (15, 1, 15, 3),
    (15, 0, 15, 4),
]  # fmt: skip


def _cbpp_bernoulli() -> pd.DataFrame:
    rows = [
        {"herd": herd, "condition": f"period{period}", "value_numeric": float(i < incidence)}
        for herd, incidence, size, period in CBPP
        for i in range(size)
    ]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def cbpp_fit() -> stats.MixedLogisticFit:
    return stats.mixed_logistic_regression(_cbpp_bernoulli(), "period1", groups=("herd",))


def test_cbpp_data_is_complete():
    data = _cbpp_bernoulli()
    assert len(CBPP) == 56
    assert len(data) == 842


def test_mixed_model_matches_glmer_on_cbpp(cbpp_fit):
    table = cbpp_fit.table.set_index("term")
    expected = {
        stats.INTERCEPT: -1.3983,
        "period2": -0.9919,
        "period3": -1.1282,
        "period4": -1.5797,
    }
    for term, value in expected.items():  # [lme4-cbpp]: its optimiser stops up to 7e-4 short
        assert table.loc[term, "log_odds"] == pytest.approx(value, abs=1e-3)
    assert cbpp_fit.random_effects.loc[0, "sd"] == pytest.approx(0.6421, abs=5e-4)
    assert cbpp_fit.log_likelihood == pytest.approx(-277.5, abs=0.05)
    lme4_se = {stats.INTERCEPT: 0.2312, "period2": 0.3032, "period3": 0.3228, "period4": 0.4220}
    for term, value in lme4_se.items():  # Hessian-based in lme4: within 2%
        assert table.loc[term, "se"] == pytest.approx(value, rel=0.02)
    assert cbpp_fit.converged
    assert not cbpp_fit.singular
    assert cbpp_fit.n_obs == 842


def test_mixed_model_matches_mixedmodels_jl_on_cbpp(cbpp_fit):
    table = cbpp_fit.table.set_index("term")
    expected = {  # [MixedModels.jl]
        stats.INTERCEPT: (-1.39853, 0.227891),
        "period2": (-0.992335, 0.305385),
        "period3": (-1.12867, 0.326049),
        "period4": (-1.58031, 0.428795),
    }
    for term, (estimate, se) in expected.items():
        assert table.loc[term, "log_odds"] == pytest.approx(estimate, abs=2e-5)
        assert table.loc[term, "se"] == pytest.approx(se, abs=2e-5)
    assert cbpp_fit.random_effects.loc[0, "sd"] == pytest.approx(0.642036, abs=5e-4)
    # Odds ratios and Wald intervals follow from the same numbers.
    assert table.loc["period2", "odds_ratio"] == pytest.approx(np.exp(-0.992335), rel=1e-4)
    assert table.loc["period2", "ci_low"] == pytest.approx(
        -0.992335 - 1.959964 * 0.305385, abs=1e-4
    )


def test_crossed_random_intercepts_are_recovered_from_simulated_ratings():
    # 400 participants each rate 6 real and 6 generated articles out of 60 per condition:
    # true log odds ratio -0.8, participant SD 1.0, article SD 0.5. With 4,800 ratings
    # the standard errors are about 0.11 (effect; the 120 articles' own variation is most
    # of it), 0.06 (participant SD) and 0.06 (article SD); the bounds are about 3-4 of
    # them, so a correct fit fails this check for very few seeds, while a fit that ignores
    # either random effect or mis-scales them fails it. (Interval coverage is checked over
    # repeated studies in test_coverage.py.)
    design = Design(
        effects={"real": 0.0, "gpt2": -0.8},
        intercept=1.0,
        within=True,
        per_participant=6,
        pool=60,
        sd_participant=1.0,
        sd_article=0.5,
    )
    data = simulate_ratings(design, 400, np.random.default_rng(20190820))
    fit = stats.mixed_logistic_regression(data, "real")
    table = fit.table.set_index("term")
    assert fit.converged
    assert table.loc["gpt2", "log_odds"] == pytest.approx(-0.8, abs=0.35)
    assert table.loc["gpt2", "se"] == pytest.approx(0.11, abs=0.03)
    sds = fit.random_effects.set_index("group")["sd"]
    assert sds["participant_id"] == pytest.approx(1.0, abs=0.25)
    assert sds["article_id"] == pytest.approx(0.5, abs=0.25)
    assert list(fit.random_effects["levels"]) == [400, 120]


def test_a_large_fit_started_from_a_share_of_the_participants_finds_the_same_optimum(
    monkeypatch,
):
    # Above MIXED_START_FROM ratings the optimiser starts from a fit to a random share of
    # the participants; lowered here so that 4,800 ratings take that path (a 1,000-rating
    # share) and compared with the fit from the plain logistic start: the same optimum to
    # far below a standard error (about 0.1), and the same standard errors.
    design = Design(
        effects={"real": 0.0, "gpt2": -0.8},
        intercept=1.0,
        within=True,
        per_participant=6,
        pool=60,
        sd_participant=1.0,
        sd_article=0.5,
    )
    data = simulate_ratings(design, 400, np.random.default_rng(20190820))
    plain = stats.mixed_logistic_regression(data, "real")
    monkeypatch.setattr(mixed, "MIXED_START_FROM", 1_000)
    monkeypatch.setattr(mixed, "MIXED_START_RATINGS", 1_000)
    started = mixed._mixed_start(*_internals(data))
    assert started[2] != 1.0  # not the plain start: the share was fitted
    shared = stats.mixed_logistic_regression(data, "real")
    assert shared.converged
    for column in ("log_odds", "se"):
        assert np.allclose(shared.table[column], plain.table[column], atol=1e-4)
    assert np.allclose(shared.random_effects["sd"], plain.random_effects["sd"], atol=1e-4)
    assert shared.log_likelihood == pytest.approx(plain.log_likelihood, abs=1e-6)


def _internals(data: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], list[int]]:
    design, _ = regression.condition_design(data, "real")
    codes = [pd.factorize(data[g], sort=True)[0] for g in ("participant_id", "article_id")]
    y = data["value_numeric"].to_numpy(dtype=float)
    return design, y, codes, [int(c.max()) + 1 for c in codes]


# Four kinds of participant (answers to real articles 1, 2 and generated 3, 4): every
# article's yes count equals the other's in its condition (20, 20; 10, 10), so the data
# carry no article-to-article variation at all, while participants differ a lot.
EQUAL_ARTICLES = {0: (1, 1, 1, 1), 1: (1, 0, 0, 0), 2: (0, 0, 0, 0), 3: (0, 1, 0, 0)}


def equal_articles_frame() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "participant_id": p,
                "article_id": a,
                "condition": "real" if a < 3 else "gpt2",
                "value_numeric": float(EQUAL_ARTICLES[p % 4][a - 1]),
            }
            for p in range(40)
            for a in (1, 2, 3, 4)
        ]
    )


def test_articles_that_do_not_differ_give_a_singular_fit():
    fit = stats.mixed_logistic_regression(equal_articles_frame(), "real")
    sds = fit.random_effects.set_index("group")["sd"]
    assert sds["article_id"] == 0.0  # on the boundary, as lme4's "singular fit"
    assert fit.singular
    assert fit.converged
    assert sds["participant_id"] > 1.0


def test_mixed_model_rejects_data_it_cannot_fit():
    one_each = pd.DataFrame(
        {
            "condition": ["real", "gpt2", "real", "gpt2"],
            "value_numeric": [1.0, 0.0, 0.0, 1.0],
            "participant_id": [1, 2, 3, 4],
            "article_id": [1, 2, 1, 2],
        }
    )
    with pytest.raises(ValueError, match="participant_id"):
        stats.mixed_logistic_regression(one_each, "real")
    with pytest.raises(ValueError, match="missing column"):
        stats.mixed_logistic_regression(one_each.drop(columns="article_id"), "real")
    with pytest.raises(ValueError, match="reference"):
        stats.mixed_logistic_regression(one_each, "nonexistent")
    all_yes = one_each.assign(value_numeric=1.0, participant_id=[1, 1, 2, 2])
    with pytest.raises(ValueError, match="same"):
        stats.mixed_logistic_regression(all_yes, "real")


@pytest.mark.parametrize(("ratio", "block"), [(10**9, 2_000_000), (10**9, 50), (0, 2_000_000)])
def test_laplace_likelihood_equals_the_dense_textbook_formula(monkeypatch, ratio, block):
    # The block (Schur complement) algebra against the Laplace formula written out with
    # dense matrices: log L = sum log p(y | eta*) - |v*|^2 / 2 - log det(I + L Z'WZ L) / 2
    # (Bates et al. 2015, eq. 5 with the binomial deviance), on three crossed factors.
    # The Schur correction in blocks of dense rows (one block, and blocks of 4 of the 30
    # participants), and with ratio = 0 through scipy.sparse (many articles per person).
    from scipy import special

    monkeypatch.setattr(mixed._LaplaceBinomial, "DENSE_PAIRS_RATIO", ratio)
    monkeypatch.setattr(mixed._LaplaceBinomial, "DENSE_BLOCK", block)
    rng = np.random.default_rng(5)
    n, sizes = 300, [30, 8, 3]
    codes = [rng.integers(0, size, n) for size in sizes]
    x = np.column_stack([np.ones(n), rng.integers(0, 2, n)])
    y = (rng.random(n) < 0.6).astype(float)
    beta, theta = np.array([0.3, -0.5]), np.array([0.8, 0.5, 0.3])
    model = mixed._LaplaceBinomial(x, y, codes, sizes)
    assert model.dense == (ratio > 0)
    value = model.log_likelihood(beta, theta)

    z = np.hstack([np.eye(size)[c] * t for c, size, t in zip(codes, sizes, theta, strict=True)])
    v = np.zeros(z.shape[1])
    for _ in range(50):  # plain Newton on the penalised log-likelihood, dense
        mu = special.expit(x @ beta + z @ v)
        hessian = np.eye(len(v)) + z.T @ (z * (mu * (1 - mu))[:, None])
        v = v + np.linalg.solve(hessian, z.T @ (y - mu) - v)
    eta = x @ beta + z @ v
    mu = special.expit(eta)
    hessian = np.eye(len(v)) + z.T @ (z * (mu * (1 - mu))[:, None])
    expected = (
        np.sum(y * eta - np.logaddexp(0, eta)) - v @ v / 2 - np.linalg.slogdet(hessian)[1] / 2
    )
    assert value == pytest.approx(expected, abs=1e-8)
