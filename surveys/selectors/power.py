"""Power at design time: the sample a study needs to detect the difference it is after."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from studyplatform.measures.planning import power_two_proportions, sample_size_two_proportions
from surveys.models import Study

# The GPT-2 release's headline rates: 83% of people found real New York Times articles
# credible, 72% found GPT-2 774M's (Solaiman et al. 2019, "Release strategies and the
# social impacts of language models", section on the Kreps et al. study).
CLASSIC_RATES = (0.83, 0.72)


@dataclass(frozen=True)
class PowerPlanRow:
    """One comparison of a condition with the reference condition."""

    condition: str
    reference: str
    p_reference: float
    p_condition: float
    # Participants per condition for the planned power, rounded up; None for equal rates:
    # for the z test (no continuity correction, R power.prop.test) and, ``n_needed_cc``,
    # for the Yates-corrected chi-square R's prop.test runs by default.
    n_needed: int | None
    quota_reference: int | None
    quota_condition: int | None
    # Power of the comparison at the two quotas; None unless both are set.
    quota_power: float | None
    n_needed_cc: int | None = None


@dataclass(frozen=True)
class PowerPlan:
    alpha: float
    power: float
    reference: str | None
    rows: tuple[PowerPlanRow, ...] = field(default_factory=tuple)


def study_power_plan(
    *,
    study: Study,
    rates: Mapping[str, float] | None = None,
    alpha: float = 0.05,
    power: float = 0.8,
) -> PowerPlan:
    """For the reference condition against each other condition: participants per
    condition that the two-sided two-proportion z test (R ``power.prop.test``'s normal
    approximation, :mod:`studyplatform.measures.planning`) needs at ``alpha`` to reach
    ``power`` if the credible rates are as planned, and the power the current quotas give.

    ``rates`` maps condition names to planned credible rates; conditions left out get the
    classic GPT-2 numbers (0.83 for the reference, 0.72 for the others). Each participant
    is counted as one independent rating: with several articles per participant their
    ratings are correlated, so this is the conservative count."""
    planned = dict(rates or {})
    conditions = list(study.conditions.order_by("id"))
    reference = next((c for c in conditions if c.is_reference), None)
    if reference is None:
        return PowerPlan(alpha=alpha, power=power, reference=None)
    within = study.design == Study.Design.WITHIN
    p_ref = planned.get(reference.name, CLASSIC_RATES[0])
    rows = []
    for condition in conditions:
        if condition.pk == reference.pk:
            continue
        p = planned.get(condition.name, CLASSIC_RATES[1])
        n_needed = (
            None
            if p == p_ref
            else math.ceil(sample_size_two_proportions(p_ref, p, alpha=alpha, power=power))
        )
        n_needed_cc = (
            None
            if p == p_ref
            else math.ceil(
                sample_size_two_proportions(
                    p_ref, p, alpha=alpha, power=power, continuity_correction=True
                )
            )
        )
        quotas = (None, None) if within else (reference.quota, condition.quota)
        quota_power = (
            power_two_proportions(p_ref, p, quotas[0], quotas[1], alpha=alpha)
            if quotas[0] and quotas[1] and p != p_ref
            else None
        )
        rows.append(
            PowerPlanRow(
                condition=condition.name,
                reference=reference.name,
                p_reference=p_ref,
                p_condition=p,
                n_needed=n_needed,
                quota_reference=quotas[0],
                quota_condition=quotas[1],
                quota_power=quota_power,
                n_needed_cc=n_needed_cc,
            )
        )
    return PowerPlan(alpha=alpha, power=power, reference=reference.name, rows=tuple(rows))
