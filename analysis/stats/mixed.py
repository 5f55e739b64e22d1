"""Mixed-effects logistic regression with crossed random intercepts (participants x
articles), fitted by the Laplace approximation as lme4's ``glmer``. Ours: no Python
library fits crossed random effects of a binomial model by maximum likelihood."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from analysis.stats.inputs import binary_values, z_critical
from analysis.stats.regression import INTERCEPT, condition_design, wald_table

RANDOM_EFFECT_COLUMNS = ["group", "levels", "sd", "variance"]
MIXED_METHOD = "maximum likelihood, Laplace approximation (as lme4::glmer with nAGQ = 1)"


@dataclass(frozen=True)
class MixedLogisticFit:
    """Result of :func:`mixed_logistic_regression`.

    ``table`` has ``LOGISTIC_COLUMNS``: first the intercept (the reference condition's log
    odds for a participant and an article at the centre of their random effects), then
    each other condition's log odds ratio against the reference, conditional on the
    participant and the article. ``random_effects`` has ``RANDOM_EFFECT_COLUMNS``: one row
    per grouping column with its number of levels and the estimated standard deviation of
    its random intercepts on the log-odds scale. ``converged`` is False when the optimiser
    stopped without meeting its tolerance; ``message`` then says why and the numbers must
    not be reported as estimates. ``singular`` is True when a standard deviation was
    estimated at (numerically) zero, as lme4's "boundary (singular) fit"."""

    table: pd.DataFrame
    random_effects: pd.DataFrame
    reference: str
    n_obs: int
    log_likelihood: float
    converged: bool
    singular: bool
    confidence: float
    method: str = MIXED_METHOD
    message: str = ""


class _LaplaceBinomial:
    """The Laplace approximation to the log-likelihood of a logistic model with random
    intercepts for one or more (crossed) grouping factors, in lme4's parametrisation:
    ``eta = X beta + sum_k theta_k Z_k v_k`` with ``v ~ N(0, I)``, so ``theta_k`` is the
    standard deviation of factor k's intercepts (Bates et al. 2015, J Stat Softw 67(1),
    sec. 5 for the penalised least squares form; the binomial case as in ``glmer``).

    The conditional mode of ``v`` is found by Newton's method on the penalised
    log-likelihood; its negative Hessian ``H = I + Lambda Z' W Z Lambda`` has a diagonal
    block for the factor with most levels (participants) and a small dense block for the
    others (articles), so ``log det H`` and solves go through the Schur complement of the
    diagonal block: linear in the number of ratings, cubic only in the number of articles.
    """

    # The Schur complement's correction ``B' D^-1 B`` is a sum over participants of
    # ``u_p u_p' / d_p``, ``u_p`` the participant's (sparse) row of the coupling ``B``.
    # Blocks of dense rows multiplied through BLAS cost ``levels * m^2``; a sparse
    # product costs about the number of within-participant pairs of cells. Dense while
    # it is at most this many times the pairs (measured: 2-3x faster with 20 articles,
    # 8x slower with 400 articles and 10 ratings each).
    DENSE_PAIRS_RATIO = 50
    DENSE_BLOCK = 2_000_000  # entries of one block of dense rows (16 MB)

    def __init__(self, x: np.ndarray, y: np.ndarray, codes: list[np.ndarray], sizes: list[int]):
        self.x = x
        self.y = y
        # The factor with most levels goes first: its block of H is diagonal.
        self.order = sorted(range(len(codes)), key=lambda k: -sizes[k])
        self.codes = [codes[k] for k in self.order]
        self.sizes = [sizes[k] for k in self.order]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)
        self.m = int(self.offsets[-1]) - self.sizes[0]  # levels of the other factors
        self.v = np.zeros(int(self.offsets[-1]))  # warm start for the next mode search
        # Fixed cell indices of E, per (j, k) pair of other factors.
        columns = [self._column(k) for k in range(1, len(self.codes))]
        self.cells = [[cj * self.m + ck for ck in columns] for cj in columns]
        # The coupling's nonzero cells (participant, other level) in CSR order, and the
        # cell of each rating under each other factor: computed once, reused per call.
        n0, m = self.sizes[0], self.m
        self.slots = np.zeros(0, dtype=np.int64)
        self.cell_rows = self.cell_columns = self.indptr = np.zeros(0, dtype=np.int64)
        self.dense = False
        if len(self.codes) > 1:
            flat = np.concatenate([self.codes[0] * m + column for column in columns])
            unique, self.slots = np.unique(flat, return_inverse=True)
            self.cell_rows = unique // m
            self.cell_columns = unique % m
            per_row = np.bincount(self.cell_rows, minlength=n0)
            self.indptr = np.concatenate([[0], np.cumsum(per_row)])
            pairs = int(np.sum(per_row.astype(np.int64) ** 2))
            self.dense = n0 * m * m <= self.DENSE_PAIRS_RATIO * pairs

    def _eta(self, beta: np.ndarray, theta: np.ndarray, v: np.ndarray) -> np.ndarray:
        eta = self.x @ beta
        for k, codes in enumerate(self.codes):
            eta = eta + theta[k] * v[self.offsets[k] : self.offsets[k + 1]][codes]
        return np.asarray(eta, dtype=float)

    def _penalised(self, eta: np.ndarray, v: np.ndarray) -> float:
        return float(np.sum(self.y * eta - np.logaddexp(0.0, eta)) - 0.5 * v @ v)

    def _column(self, k: int) -> np.ndarray:
        """Each rating's column in the block of the other factors (k >= 1)."""
        return self.codes[k] + int(self.offsets[k]) - self.sizes[0]

    def _factorise(
        self, theta: np.ndarray, w: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
        """``H``'s diagonal first block, and the Cholesky factor of the Schur complement
        ``E - B' D^-1 B`` of the other factors (``B``, the coupling, stays implicit)."""
        n0, m = self.sizes[0], self.m
        diagonal = 1.0 + theta[0] ** 2 * np.bincount(self.codes[0], weights=w, minlength=n0)
        if len(self.codes) == 1:
            return diagonal, theta, w, None
        columns = [self._column(k) for k in range(1, len(self.codes))]
        scale = theta[1:]
        flat = np.zeros(m * m)
        for j in range(len(columns)):  # E: I + Lambda Z_j' W Z_k Lambda
            for k in range(len(columns)):
                flat += np.bincount(
                    self.cells[j][k], weights=scale[j] * scale[k] * w, minlength=m * m
                )
        values = theta[0] * np.bincount(
            self.slots,
            weights=np.concatenate([scale[k] * w for k in range(len(columns))]),
            minlength=len(self.cell_rows),
        )
        schur = np.eye(m) + flat.reshape(m, m) - self._correction(values, diagonal)
        return diagonal, theta, w, np.linalg.cholesky(schur)

    def _correction(self, values: np.ndarray, diagonal: np.ndarray) -> np.ndarray:
        """``B' D^-1 B`` from the coupling's nonzero ``values`` (in CSR order)."""
        n0, m = self.sizes[0], self.m
        if not self.dense:
            from scipy import sparse

            coupling = sparse.csr_matrix((values, self.cell_columns, self.indptr), shape=(n0, m))
            scaled = sparse.csr_matrix(
                (values / diagonal[self.cell_rows], self.cell_columns, self.indptr), shape=(n0, m)
            )
            return np.asarray((coupling.T @ scaled).toarray(), dtype=float)
        total = np.zeros((m, m))
        block = max(1, self.DENSE_BLOCK // m)
        for start in range(0, n0, block):
            stop = min(n0, start + block)
            low, high = int(self.indptr[start]), int(self.indptr[stop])
            flat = np.zeros((stop - start) * m)
            flat[(self.cell_rows[low:high] - start) * m + self.cell_columns[low:high]] = values[
                low:high
            ]
            rows = flat.reshape(stop - start, m)
            total += (rows.T / diagonal[start:stop]) @ rows
        return total

    def _coupling_times(self, theta: np.ndarray, w: np.ndarray, rest: np.ndarray) -> np.ndarray:
        """``B @ rest``: from the other factors' levels to the first factor's."""
        total = np.zeros(self.sizes[0])
        for k in range(1, len(self.codes)):
            total += np.bincount(
                self.codes[0],
                weights=theta[0] * theta[k] * w * rest[self._column(k)],
                minlength=self.sizes[0],
            )
        return total

    def _coupling_t_times(self, theta: np.ndarray, w: np.ndarray, head: np.ndarray) -> np.ndarray:
        """``B' @ head``: from the first factor's levels to the other factors'."""
        total = np.zeros(self.m)
        for k in range(1, len(self.codes)):
            total += np.bincount(
                self._column(k),
                weights=theta[0] * theta[k] * w * head[self.codes[0]],
                minlength=self.m,
            )
        return total

    def _solve(
        self, factors: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None], g: np.ndarray
    ) -> np.ndarray:
        from scipy.linalg import cho_solve

        diagonal, theta, w, chol = factors
        n0 = self.sizes[0]
        if chol is None:
            return np.asarray(g / diagonal, dtype=float)
        head, tail = g[:n0], g[n0:]
        rest = np.asarray(
            cho_solve((chol, True), tail - self._coupling_t_times(theta, w, head / diagonal))
        )
        first = (head - self._coupling_times(theta, w, rest)) / diagonal
        return np.concatenate([first, rest])

    @staticmethod
    def _log_det(factors: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]) -> float:
        diagonal, _, _, chol = factors
        total = float(np.sum(np.log(diagonal)))
        if chol is not None:
            total += 2.0 * float(np.sum(np.log(np.diag(chol))))
        return total

    def _score(self, theta: np.ndarray, residual: np.ndarray, v: np.ndarray) -> np.ndarray:
        parts = [
            theta[k] * np.bincount(codes, weights=residual, minlength=self.sizes[k])
            for k, codes in enumerate(self.codes)
        ]
        return np.asarray(np.concatenate(parts) - v, dtype=float)

    def log_likelihood(self, beta: np.ndarray, theta: np.ndarray) -> float:
        """Laplace-approximate log-likelihood at ``(beta, theta)`` (``theta`` in the
        caller's factor order). Bernoulli rows, so no binomial-coefficient constant."""
        theta = np.asarray(theta, dtype=float)[self.order]
        v = self.v.copy()
        eta = self._eta(beta, theta, v)
        value = self._penalised(eta, v)
        for _ in range(100):
            mu = special.expit(eta)
            w = mu * (1.0 - mu)
            step = self._solve(self._factorise(theta, w), self._score(theta, self.y - mu, v))
            size = 1.0
            while True:  # step halving keeps every Newton step an ascent step
                trial = v + size * step
                trial_eta = self._eta(beta, theta, trial)
                trial_value = self._penalised(trial_eta, trial)
                if trial_value >= value - 1e-12 * (1.0 + abs(value)) or size < 1e-10:
                    break
                size /= 2.0
            moved = float(np.max(np.abs(size * step))) if step.size else 0.0
            v, eta, value = trial, trial_eta, trial_value
            # Newton converges quadratically: after a step this small the mode is exact
            # to about its square, far below what the deviance's differences resolve.
            if moved < 1e-6:
                break
        self.v = v
        mu = special.expit(eta)
        return value - 0.5 * self._log_det(self._factorise(theta, mu * (1.0 - mu)))

    def fixed_covariance(self, beta: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """Covariance of the fixed effects given the random-effect SDs:
        ``(X'WX - X'W Z Lambda H^-1 Lambda Z'W X)^-1`` at the conditional modes, the
        inverse of the Schur complement of the penalised system (lme4's ``RX``, used by
        ``vcov(..., use.hessian = FALSE)`` and by MixedModels.jl)."""
        self.log_likelihood(beta, theta)  # leaves the conditional modes in self.v
        theta = np.asarray(theta, dtype=float)[self.order]
        mu = special.expit(self._eta(beta, theta, self.v))
        w = mu * (1.0 - mu)
        factors = self._factorise(theta, w)
        weighted = self.x * w[:, None]
        cross = np.column_stack(
            [
                np.concatenate(
                    [
                        theta[k] * np.bincount(codes, weights=weighted[:, j], minlength=size)
                        for k, (codes, size) in enumerate(zip(self.codes, self.sizes, strict=True))
                    ]
                )
                for j in range(self.x.shape[1])
            ]
        )
        solved = np.column_stack([self._solve(factors, cross[:, j]) for j in range(cross.shape[1])])
        information = self.x.T @ weighted - cross.T @ solved
        return np.asarray(np.linalg.inv(information), dtype=float)


def _plain_logistic(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Maximum-likelihood logistic coefficients by Newton-Raphson (start values only)."""
    beta = np.zeros(x.shape[1])
    for _ in range(50):
        mu = special.expit(x @ beta)
        step = np.linalg.solve((x * (mu * (1.0 - mu))[:, None]).T @ x, x.T @ (y - mu))
        beta = beta + step
        if float(np.max(np.abs(step))) < 1e-10:
            break
    return np.asarray(beta, dtype=float)


def _numerical_gradient(
    function: Callable[[np.ndarray], float],
    point: np.ndarray,
    central: bool = True,
    centre: float | None = None,
) -> np.ndarray:
    """Finite-difference gradient: central (accurate, for the convergence check) or
    forward (half the evaluations, for the optimiser's steps). The Laplace objective is
    computed to about 1e-10 (the conditional modes converge quadratically), so
    steps of 1e-5 and 1e-6 keep rounding and truncation error near 1e-5 and 1e-4."""
    gradient = np.zeros(len(point))
    if central:
        for i in range(len(point)):
            up, down = point.copy(), point.copy()
            up[i] += 1e-5
            down[i] -= 1e-5
            gradient[i] = (function(up) - function(down)) / 2e-5
        return gradient
    base = function(point) if centre is None else centre
    for i in range(len(point)):
        up = point.copy()
        up[i] += 1e-6
        gradient[i] = (function(up) - base) / 1e-6
    return gradient


# Above this many ratings a mixed fit starts from a fit to a random share of the
# participants holding about MIXED_START_RATINGS ratings: near the optimum L-BFGS-B needs
# about a quarter of the deviance evaluations it needs from the plain logistic start
# (measured: 50 instead of 225 at 200,000 ratings, with the same estimates to 1e-6).
MIXED_START_FROM = 50_000
MIXED_START_RATINGS = 10_000


def _minimise_deviance(model: _LaplaceBinomial, start: np.ndarray, ftol: float) -> Any:
    """L-BFGS-B on the Laplace deviance over the fixed effects and the random-effect
    SDs (bounded at 0), with forward-difference gradients; scipy's OptimizeResult."""
    from scipy.optimize import minimize

    p = model.x.shape[1]

    def deviance(params: np.ndarray) -> float:
        return -2.0 * model.log_likelihood(params[:p], params[p:])

    def deviance_and_gradient(params: np.ndarray) -> tuple[float, np.ndarray]:
        value = deviance(params)
        return value, _numerical_gradient(deviance, params, central=False, centre=value)

    bounds = [(None, None)] * p + [(0.0, None)] * (len(start) - p)
    return minimize(
        deviance_and_gradient,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 500, "ftol": ftol, "gtol": 1e-5},
    )


def _mixed_start(
    design: np.ndarray, y: np.ndarray, codes: list[np.ndarray], sizes: list[int]
) -> np.ndarray:
    """Start values ``(beta, theta)``: the plain logistic coefficients and SDs of 1, or
    for a large data set the estimates from a random share of the levels of the largest
    factor (participants) with all their ratings. The draw is seeded, so a fit is
    reproducible; a share the model cannot be fitted to falls back to the plain start."""
    plain = np.concatenate([_plain_logistic(design, y), np.ones(len(codes))])
    if len(y) <= MIXED_START_FROM:
        return plain
    largest = int(np.argmax(sizes))
    keep = np.random.default_rng(0).random(sizes[largest]) < MIXED_START_RATINGS / len(y)
    rows = keep[codes[largest]]
    part_design, part_y = design[rows], y[rows]
    # Every condition (and the reference) needs both answers, or its odds ratio is infinite.
    reference_rows = ~part_design[:, 1:].any(axis=1)
    cells = [reference_rows] + [part_design[:, j] == 1.0 for j in range(1, design.shape[1])]
    if any(not 0.0 < float(part_y[cell].mean()) < 1.0 for cell in cells if cell.any()):
        return plain
    if any(not cell.any() for cell in cells):
        return plain
    part_codes = [pd.factorize(c[rows], sort=True)[0].astype(np.int64) for c in codes]
    part_sizes = [int(c.max()) + 1 for c in part_codes]
    if min(part_sizes) < 2:
        return plain
    try:
        part_start = np.concatenate([_plain_logistic(part_design, part_y), np.ones(len(codes))])
        model = _LaplaceBinomial(part_design, part_y, part_codes, part_sizes)
        result = _minimise_deviance(model, part_start, ftol=1e-10)
    except (ValueError, np.linalg.LinAlgError, FloatingPointError):
        return plain
    found = np.asarray(result.x, dtype=float)
    return found if bool(np.all(np.isfinite(found))) else plain


def mixed_logistic_regression(
    df: pd.DataFrame,
    reference: str,
    groups: tuple[str, ...] = ("participant_id", "article_id"),
    confidence: float = 0.95,
) -> MixedLogisticFit:
    """Logistic mixed-effects model of a yes/no answer on condition with crossed random
    intercepts, by default for participants and for articles.

    Input columns: ``condition``, ``value_numeric`` (0/1; missing answers are dropped) and
    one column per name in ``groups`` (rows with a missing group are dropped).
    Model: ``logit P(yes) = b0 + sum_c b_c [condition = c] + u_participant + a_article``
    with ``u ~ N(0, sd_p^2)`` and ``a ~ N(0, sd_a^2)`` independent, the ``reference``
    condition as baseline: the R formula ``credible ~ condition + (1 | participant) +
    (1 | article)``. ``b_c`` is a log odds ratio *conditional* on participant and
    article (larger in magnitude than the population-averaged one of
    :func:`logistic_regression` whenever the random effects vary).
    Estimation: maximum likelihood with the Laplace approximation to the integral over
    the random effects, as ``lme4::glmer`` by default (nAGQ = 1), optimised over the fixed
    effects and the standard deviations together (L-BFGS-B, standard deviations bounded
    at 0; above ``MIXED_START_FROM`` ratings from the estimates on a seeded random share of
    the participants, which saves three quarters of the evaluations). Standard errors of
    the fixed effects come from their information matrix at
    the conditional modes given the estimated SDs (lme4's ``RX``, i.e. ``vcov(fit,
    use.hessian = FALSE)``, and MixedModels.jl's; lme4's default finite-difference
    Hessian differs by about 1% on its ``cbpp`` example); Wald z, two-sided p and
    ``estimate +- z * se`` intervals, also as odds ratios.
    Assumptions: normal random intercepts, independent of condition; the Laplace
    approximation is accurate when each participant and article has several ratings
    (it is biased towards zero for very few binary ratings per level). The Wald
    intervals treat the estimated SDs as known, so with few articles they are somewhat
    narrow: 91-92% coverage of the 95% interval measured on simulated within-subject
    studies of 60-120 participants and 24-60 articles (tests/analysis/test_coverage.py). Each random
    effect needs at least two levels, and some level with two or more ratings.
    Raises ValueError for data the model cannot be fitted to; an optimiser that does
    not converge is reported with ``converged=False`` and a ``message``.
    """
    needed = {"condition", "value_numeric", *groups}
    missing = needed - set(df.columns)
    if missing:
        raise ValueError(f"missing column(s): {', '.join(sorted(missing))}")
    if not groups:
        raise ValueError("A mixed model needs at least one grouping column.")
    z_critical(confidence)
    data = binary_values(df).join(df[list(groups)])
    data = data.loc[data[list(groups)].notna().all(axis=1)]
    design, others = condition_design(data, reference)
    codes: list[np.ndarray] = []
    sizes: list[int] = []
    for group in groups:
        labels = pd.factorize(data[group], sort=True)[0]
        counts = np.bincount(labels)
        if len(counts) < 2 or counts.max() < 2:
            raise ValueError(
                f'A random intercept for "{group}" needs at least two of them and some with '
                "two or more ratings; this data has "
                f"{len(counts)} with at most {int(counts.max()) if len(counts) else 0} each."
            )
        codes.append(labels.astype(np.int64))
        sizes.append(len(counts))
    y = data["value_numeric"].to_numpy(dtype=float)
    model = _LaplaceBinomial(design, y, codes, sizes)
    p, k = design.shape[1], len(groups)

    def deviance(params: np.ndarray) -> float:
        return -2.0 * model.log_likelihood(params[:p], params[p:])

    result = _minimise_deviance(model, _mixed_start(design, y, codes, sizes), ftol=1e-13)
    params = np.asarray(result.x, dtype=float)
    value = deviance(params)
    gradient = _numerical_gradient(deviance, params)
    # The projected gradient: a standard deviation at its bound of 0 may slope upwards.
    free = np.ones(p + k, dtype=bool)
    free[p:] = params[p:] > 1e-4
    projected = np.where(free, gradient, np.minimum(gradient, 0.0))
    # L-BFGS-B often reports a failed line search once the finite-difference gradient
    # is at its noise floor; what matters is that the gradient is flat there.
    # The optimiser's forward differences over-state the gradient by about h/2 times
    # the curvature, which grows with the number of ratings, so the tolerance grows with
    # it: what it bounds, the distance to the optimum in standard errors, stays put (at
    # 10^6 ratings 0.05 is about 1e-4 of the intercept's standard error).
    tolerance = 1e-2 * max(1.0, len(y) / 200_000)
    converged = bool(np.max(np.abs(projected)) < tolerance)
    message = "" if converged else f"the optimiser stopped without converging ({result.message})"
    singular = not bool(free[p:].all())
    se = np.full(p, math.nan)
    try:
        variances = np.diag(model.fixed_covariance(params[:p], params[p:]))
        if np.any(variances <= 0):
            raise np.linalg.LinAlgError("not positive definite")
        se = np.sqrt(variances)
    except np.linalg.LinAlgError:
        converged = False
        message = "the information matrix of the fixed effects is singular at the estimate"
    sds = np.abs(params[p:])
    random_effects = pd.DataFrame(
        {"group": list(groups), "levels": sizes, "sd": sds, "variance": sds**2}
    )
    return MixedLogisticFit(
        table=wald_table([INTERCEPT, *others], params[:p], se, confidence),
        random_effects=random_effects[RANDOM_EFFECT_COLUMNS],
        reference=reference,
        n_obs=len(data),
        log_likelihood=-value / 2.0,
        converged=converged,
        singular=singular,
        confidence=confidence,
        message=message,
    )
