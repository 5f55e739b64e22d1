"""Logistic regression of a yes/no answer on condition with participant-clustered errors,
and with a moderator (condition x moderator)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.stats.inputs import binary_values, z_critical

# ---------------------------------------------------------------------------------------
# Logistic regression with participant-clustered errors

LOGISTIC_COLUMNS = [
    "term",
    "log_odds",
    "se",
    "z",
    "p_value",
    "ci_low",
    "ci_high",
    "odds_ratio",
    "or_ci_low",
    "or_ci_high",
]
INTERCEPT = "(intercept)"


@dataclass(frozen=True)
class LogisticFit:
    """Result of :func:`logistic_regression`. ``table`` has one row per term
    (``LOGISTIC_COLUMNS``): first the intercept (the reference condition's log odds), then
    each other condition's log odds ratio against the reference. ``cov_type`` is
    "cluster" (participant-clustered sandwich) or "nonrobust" (model-based)."""

    table: pd.DataFrame
    reference: str
    n_obs: int
    n_clusters: int
    cov_type: str
    confidence: float


def logistic_regression(
    df: pd.DataFrame,
    reference: str,
    confidence: float = 0.95,
    cluster: bool = True,
) -> LogisticFit:
    """Logistic regression of a yes/no answer on condition, with participant-clustered
    standard errors.

    Input columns: ``condition``, ``value_numeric`` (0/1; missing values are dropped) and,
    when ``cluster``, ``participant_id``. Model: ``logit P(yes) = b0 + sum_c b_c [condition
    = c]`` with the ``reference`` condition as baseline, fitted by maximum likelihood
    (statsmodels GLM, Binomial family, logit link). ``b_c`` is the log odds ratio of
    condition ``c`` against the reference; with one binary factor the model is saturated,
    so ``b_c`` equals the log of the 2x2 table's sample odds ratio.
    Errors: with ``cluster`` the cluster-robust sandwich over participants (statsmodels
    ``cov_type="cluster"``, with its default small-sample factor G/(G-1) * (N-1)/(N-K)
    for G participants, N ratings and K coefficients), which allows a participant's
    several ratings to be correlated; otherwise the model-based (Fisher information)
    errors, which assume every rating independent. Wald z, two-sided p and
    ``estimate +- z * se`` intervals, also on the odds-ratio scale.
    Assumptions: ratings independent across participants; enough clusters (a few dozen or
    more) for the sandwich to be reliable. Raises ValueError when the reference has no
    data, when there is only one condition, or when a condition answered all yes or all
    no (the maximum-likelihood estimate is then infinite: see :func:`fisher_exact_p`).
    """
    import statsmodels.api as sm  # heavy import, needed only here

    needed = {"condition", "value_numeric"} | ({"participant_id"} if cluster else set())
    missing = needed - set(df.columns)
    if missing:
        raise ValueError(f"missing column(s): {', '.join(sorted(missing))}")
    z_critical(confidence)  # an invalid confidence fails before the data is looked at
    data = binary_values(df)
    if cluster:
        data = data.join(df["participant_id"])
    design, others = condition_design(data, reference)
    model = sm.GLM(
        data["value_numeric"].to_numpy(dtype=float), design, family=sm.families.Binomial()
    )
    if cluster:
        groups = pd.factorize(data["participant_id"])[0]
        result = model.fit(cov_type="cluster", cov_kwds={"groups": groups})
        n_clusters = int(groups.max()) + 1
    else:
        result = model.fit()
        n_clusters = len(data)
    params = np.asarray(result.params, dtype=float)
    se = np.asarray(result.bse, dtype=float)
    return LogisticFit(
        table=wald_table([INTERCEPT, *others], params, se, confidence),
        reference=reference,
        n_obs=len(data),
        n_clusters=n_clusters,
        cov_type="cluster" if cluster else "nonrobust",
        confidence=confidence,
    )


def condition_design(
    data: pd.DataFrame, reference: str, factor: str = "condition"
) -> tuple[np.ndarray, list[str]]:
    """Intercept plus one indicator per non-reference level of ``factor`` (sorted)."""
    levels = sorted(set(data[factor]))
    if reference not in levels:
        raise ValueError(f'The reference condition "{reference}" has no answers to compare with.')
    if len(levels) < 2:
        raise ValueError("A regression on condition needs at least two conditions with answers.")
    shares = data.groupby(factor)["value_numeric"].mean()
    degenerate = sorted(str(c) for c, share in shares.items() if share in (0.0, 1.0))
    if degenerate:
        raise ValueError(
            "Every answer is the same in "
            + ", ".join(degenerate)
            + ": the odds ratio is infinite and the regression undefined."
        )
    others = [c for c in levels if c != reference]
    design = np.column_stack(
        [np.ones(len(data))] + [(data[factor] == c).to_numpy(dtype=float) for c in others]
    )
    return design, others


def wald_table(
    terms: list[str], params: np.ndarray, se: np.ndarray, confidence: float
) -> pd.DataFrame:
    """``LOGISTIC_COLUMNS`` from log-odds estimates and their standard errors: Wald z,
    two-sided normal p, ``estimate +- z * se`` at ``confidence``, and the same on the
    odds-ratio scale."""
    z_crit = z_critical(confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = params / se
    table = pd.DataFrame(
        {
            "term": terms,
            "log_odds": params,
            "se": se,
            "z": z,
            "p_value": 2.0 * sps.norm.sf(np.abs(z)),
            "ci_low": params - z_crit * se,
            "ci_high": params + z_crit * se,
        }
    )
    table["odds_ratio"] = np.exp(table["log_odds"])
    table["or_ci_low"] = np.exp(table["ci_low"])
    table["or_ci_high"] = np.exp(table["ci_high"])
    return table[LOGISTIC_COLUMNS]


# ---------------------------------------------------------------------------------------
# Moderators: condition x moderator in a participant-clustered logistic regression


@dataclass(frozen=True)
class ModeratorFit:
    """Result of :func:`moderator_logistic_regression`. ``table`` has
    ``LOGISTIC_COLUMNS``, terms in the order intercept, ``<condition>``,
    ``<moderator term>``, ``<condition>:<moderator term>``; ``interactions`` names the
    interaction terms. ``wald_*`` is the joint Wald test that every interaction is zero
    with the (clustered) covariance; ``lr_*`` the likelihood-ratio test against the model
    without interactions, which assumes independent ratings (exact only with one rating
    per participant). ``dropped`` counts ratings left out for a missing moderator."""

    table: pd.DataFrame
    moderator: str
    numeric: bool
    moderator_reference: str | None
    interactions: list[str]
    wald_chi2: float
    wald_df: int
    wald_p: float
    lr_chi2: float
    lr_p: float
    n_obs: int
    n_clusters: int
    dropped: int
    cov_type: str
    confidence: float


# Complexity kept: the model's guards (levels, separation, clustering) before one fit, as
# statsmodels needs them.
def moderator_logistic_regression(  # noqa: C901
    df: pd.DataFrame,
    reference: str,
    moderator: str,
    numeric: bool = False,
    moderator_reference: str | None = None,
    factor: str = "condition",
    confidence: float = 0.95,
    cluster: bool = True,
) -> ModeratorFit:
    """Does the effect of ``factor`` (condition) on a yes/no answer depend on a
    moderator? Logistic regression of ``value_numeric`` on factor x moderator.

    Input columns: ``factor`` (default ``condition``), ``value_numeric`` (0/1), the
    ``moderator`` column and, when ``cluster``, ``participant_id``. Rows with a missing
    answer or moderator are left out (``dropped`` counts the latter).
    Model: ``logit P(yes) = b0 + sum_c b_c C_c + M + sum_c g_c C_c M`` with treatment
    coding of the factor against ``reference``. A categorical moderator (party ID,
    disclaimer shown or not) is coded with one indicator per level other than
    ``moderator_reference`` (default: its first level by name); a numeric one (ideology
    1-7) enters centred at its mean, so ``b_c`` is the condition's log odds ratio at the
    average moderator and ``g_c`` how much that log odds ratio changes per unit of it.
    Each ``g_c`` is a ratio of odds ratios on the log scale (R: ``glm(y ~ condition *
    moderator, family = binomial)``). Fitted by maximum likelihood; errors as in
    :func:`logistic_regression` (participant-clustered sandwich when ``cluster``).
    Tests of "no moderation": the joint Wald chi-square of all ``g_c`` with that
    covariance (df = number of interaction terms), and the likelihood-ratio chi-square
    against the main-effects model (model-based: it treats ratings as independent).
    Assumptions: as :func:`logistic_regression`; every factor level observed at more
    than one moderator value. Raises ValueError when a cell is empty or all-yes/all-no
    (the model is then not identified) or a column is missing.
    """
    import statsmodels.api as sm  # heavy import, needed only here

    needed = {factor, "value_numeric", moderator} | ({"participant_id"} if cluster else set())
    missing = needed - set(df.columns)
    if missing:
        raise ValueError(f"missing column(s): {', '.join(sorted(missing))}")
    z_critical(confidence)
    answered = df.loc[df["value_numeric"].notna()]
    bad = ~answered["value_numeric"].isin([0.0, 1.0])
    if bad.any():
        raise ValueError("value_numeric must be 0 or 1 for a binary question")
    data = answered.loc[answered[moderator].notna()]
    dropped = len(answered) - len(data)
    factor_design, others = condition_design(data, reference, factor=factor)
    terms = [INTERCEPT, *[str(c) for c in others]]
    columns = list(factor_design.T)
    moderator_columns: list[np.ndarray] = []
    moderator_terms: list[str] = []
    chosen_reference: str | None = None
    if numeric:
        values = pd.to_numeric(data[moderator], errors="coerce")
        if values.isna().any():
            raise ValueError(f'The moderator "{moderator}" must be numeric.')
        if values.nunique() < 2:
            raise ValueError(f'The moderator "{moderator}" takes a single value in this data.')
        moderator_columns.append((values - values.mean()).to_numpy(dtype=float))
        moderator_terms.append(moderator)
    else:
        levels = sorted(str(v) for v in set(data[moderator]))
        if len(levels) < 2:
            raise ValueError(f'The moderator "{moderator}" takes a single value in this data.')
        chosen_reference = moderator_reference if moderator_reference is not None else levels[0]
        if chosen_reference not in levels:
            raise ValueError(f'The moderator level "{chosen_reference}" does not occur.')
        text = data[moderator].astype(str)
        for level in levels:
            if level != chosen_reference:
                moderator_columns.append((text == level).to_numpy(dtype=float))
                moderator_terms.append(f"{moderator}[{level}]")
    interactions: list[str] = []
    interaction_columns: list[np.ndarray] = []
    for c_index, condition in enumerate(others, start=1):
        for m_column, m_term in zip(moderator_columns, moderator_terms, strict=True):
            interaction_columns.append(factor_design[:, c_index] * m_column)
            interactions.append(f"{condition}:{m_term}")
    main = np.column_stack(columns + moderator_columns)
    full = np.column_stack([main, *interaction_columns])
    if np.linalg.matrix_rank(full) < full.shape[1]:
        raise ValueError(
            f'Condition and "{moderator}" are confounded in this data (some combination '
            "never occurs), so their interaction cannot be estimated."
        )
    y = data["value_numeric"].to_numpy(dtype=float)
    if not numeric:
        cells = data.groupby([data[factor], data[moderator].astype(str)])["value_numeric"]
        shares = cells.mean()
        if bool(shares.isin([0.0, 1.0]).any()):
            raise ValueError(
                "Every answer is the same in some condition x moderator cell: the "
                "interaction's odds ratio is infinite and the regression undefined."
            )
    model = sm.GLM(y, full, family=sm.families.Binomial())
    if cluster:
        groups = pd.factorize(data["participant_id"])[0]
        result = model.fit(cov_type="cluster", cov_kwds={"groups": groups})
        n_clusters = int(groups.max()) + 1
    else:
        result = model.fit()
        n_clusters = len(data)
    reduced = sm.GLM(y, main, family=sm.families.Binomial()).fit()
    params = np.asarray(result.params, dtype=float)
    covariance = np.asarray(result.cov_params(), dtype=float)
    se = np.sqrt(np.diag(covariance))
    table = wald_table(terms + moderator_terms + interactions, params, se, confidence)
    tail = slice(main.shape[1], full.shape[1])
    g = params[tail]
    wald = float(g @ np.linalg.solve(covariance[tail, tail], g))
    lr = max(0.0, 2.0 * float(result.llf - reduced.llf))
    df_test = len(interactions)
    return ModeratorFit(
        table=table,
        moderator=moderator,
        numeric=numeric,
        moderator_reference=chosen_reference,
        interactions=interactions,
        wald_chi2=wald,
        wald_df=df_test,
        wald_p=float(sps.chi2.sf(wald, df_test)),
        lr_chi2=lr,
        lr_p=float(sps.chi2.sf(lr, df_test)),
        n_obs=len(data),
        n_clusters=n_clusters,
        dropped=dropped,
        cov_type="cluster" if cluster else "nonrobust",
        confidence=confidence,
    )
