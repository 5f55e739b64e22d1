"""In-memory simulated ratings for the coverage and recovery checks: participants and
articles with random intercepts on the log-odds scale, drawn straight into a DataFrame
with the columns of ``analysis.frames.responses_frame`` (no database, no HTTP), so the
statistics see exactly the shape they see in a real report."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special

from analysis.frames import RESPONSE_COLUMNS


@dataclass(frozen=True)
class Design:
    """``logit P(credible) = intercept + effect[condition] + u_participant + a_article``.

    Between subjects: each participant is in one condition and rates ``per_participant``
    of its articles. Within subjects: each participant rates ``per_participant`` articles
    of *every* condition. ``pool`` articles per condition."""

    effects: dict[str, float]  # the reference condition's entry is 0
    intercept: float
    within: bool
    per_participant: int
    pool: int
    sd_participant: float
    sd_article: float


def simulate_ratings(
    design: Design,
    participants: int,
    rng: np.random.Generator,
    article_effects: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """One study's "credible" answers. ``article_effects`` fixes each condition's pool
    (the same articles in every repetition); by default they are drawn afresh."""
    conditions = list(design.effects)
    pools = article_effects or {
        c: rng.normal(0.0, design.sd_article, design.pool) for c in conditions
    }
    person = rng.normal(0.0, design.sd_participant, participants)
    k = design.per_participant
    people, condition_index = [], []
    if design.within:
        for c_index in range(len(conditions)):
            people.append(np.arange(participants))
            condition_index.append(np.full(participants, c_index))
    else:
        people.append(np.arange(participants))
        condition_index.append(np.arange(participants) % len(conditions))
    who = np.concatenate(people)
    which = np.concatenate(condition_index)
    # k articles without replacement per participant and condition: the first k of a
    # random permutation of the pool.
    chosen = rng.random((len(who), design.pool)).argsort(axis=1)[:, :k]
    pool_effects = np.stack([pools[c] for c in conditions])  # conditions x pool
    condition_effects = np.array([design.effects[c] for c in conditions])
    eta_matrix = (
        design.intercept
        + condition_effects[which][:, None]
        + person[who][:, None]
        + pool_effects[which[:, None], chosen]
    )
    rows_participant = np.repeat(who + 1, k)
    rows_condition = np.asarray(conditions, dtype=object)[np.repeat(which, k)]
    rows_article = (1000 * (np.repeat(which, k) + 1) + chosen.ravel()).astype(np.int64)
    rows_eta = eta_matrix.ravel()
    eta = np.asarray(rows_eta)
    answer = rng.random(len(eta)) < special.expit(eta)
    n = len(eta)
    frame = pd.DataFrame(
        {
            "response_id": np.arange(1, n + 1),
            "participant_id": rows_participant,
            "condition": rows_condition,
            "is_test": False,
            "participant_status": "completed",
            "article_id": rows_article,
            "article_origin": np.where(rows_condition == conditions[0], "real", "generated"),
            "question_key": "credible",
            "question_kind": "binary",
            "value": np.where(answer, "yes", "no"),
            "value_numeric": answer.astype(float),
        }
    )
    # The columns a simulation has no use for (timestamps, provenance) stay empty.
    frame = frame.reindex(columns=RESPONSE_COLUMNS)
    return frame


def marginal_rate(intercept: float, sd_participant: float, article_effects: np.ndarray) -> float:
    """The population share of "yes" over participants for a fixed pool of articles:
    the mean over articles of E_u[expit(intercept + a + u)], u ~ N(0, sd^2), by
    Gauss-Hermite quadrature (60 nodes: exact to about 1e-12 for these smooth integrands)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)
    weights = weights / weights.sum()
    values = special.expit(intercept + article_effects[:, None] + sd_participant * nodes[None, :])
    return float(np.mean(values @ weights))
