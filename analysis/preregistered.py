"""How a study's report stands against its preregistration: which analyses were planned
and which are exploratory, and where the data departed from the plan (the sample fell
short, the primary comparison has no result). The preregistration document itself is
``analysis.preregistration``; both read the plan from here (``sample_plan``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from surveys.models import Study
from surveys.selectors import PowerPlan, study_power_plan
from surveys.services import study_design_hash

if TYPE_CHECKING:
    from analysis.services import StudyReport

# What an analysis of the report is, against the preregistration.
PLANNED = "planned"
EXPLORATORY = "exploratory"


@dataclass(frozen=True)
class SamplePlan:
    """Participants per condition: the quota when set, else the n the power calculation
    asks for (the reference: the largest any of its comparisons asks for)."""

    condition: str
    planned: int | None
    basis: str


@dataclass(frozen=True)
class PreregistrationCheck:
    """For a report: each analysis it shows with "planned" or "exploratory", and every
    departure from the plan in words (empty when there is none)."""

    design_hash: str
    analyses: list[tuple[str, str]] = field(default_factory=list)
    deviations: list[str] = field(default_factory=list)


def planned_rates(*, study: Study) -> dict[str, float]:
    """The credible rates the plan assumes: the original study's, where the study records
    them (``Condition.original_rate``); ``study_power_plan`` gives the others the GPT-2
    release's rates."""
    return {
        name: rate
        for name, rate in study.conditions.values_list("name", "original_rate")
        if rate is not None
    }


def sample_plan(*, study: Study, plan: PowerPlan | None = None) -> list[SamplePlan]:
    """The planned participants per condition (see ``SamplePlan``); ``plan``: the study's
    power plan at ``planned_rates``, when the caller has it already."""
    if plan is None:
        plan = study_power_plan(study=study, rates=planned_rates(study=study))
    needed: dict[str, int] = {}
    for row in plan.rows:
        if row.n_needed is not None:
            needed[row.condition] = row.n_needed
            needed[row.reference] = max(needed.get(row.reference, 0), row.n_needed)
    sample = []
    for condition in study.conditions.order_by("-is_reference", "name"):
        if condition.quota is not None:
            sample.append(SamplePlan(condition.name, condition.quota, "quota"))
        elif condition.name in needed:
            sample.append(SamplePlan(condition.name, needed[condition.name], "power"))
        else:
            sample.append(SamplePlan(condition.name, None, "none"))
    return sample


def _sections(report: StudyReport) -> list[tuple[str, str]]:
    """The report's analyses that the study shows, each "planned" or "exploratory"."""
    sections = []
    if not report.comparisons.empty:
        sections.append(("comparisons with the reference", PLANNED))
    if report.regression is not None:
        sections.append(("logistic regression", PLANNED))
    if report.omnibus is not None:
        sections.append(("all conditions (omnibus and pairwise)", PLANNED))
    exploratory = [
        ("mixed model", report.mixed is not None),
        ("moderators", bool(report.moderators)),
        ("rating scales", not report.likert.empty),
        ("credibility index", not report.index.empty),
        ("detection", report.detection is not None and not report.detection.empty),
        ("machine detectors", report.detectors is not None),
    ]
    sections += [(name, EXPLORATORY) for name, shown in exploratory if shown]
    return sections


def preregistration_check(*, study: Study, report: StudyReport) -> PreregistrationCheck | None:
    """How ``report`` stands against the study's preregistration; None for a draft."""
    if not study.design_hash or study.status == Study.Status.DRAFT:
        return None
    deviations = []
    if study_design_hash(study=study) != study.design_hash:
        deviations.append("The design differs from the one frozen with the preregistration.")
    # Participants, as the plan counts them, not ratings.
    responses = report.responses
    analysed = (
        responses.groupby("condition")["participant_id"].nunique().to_dict()
        if {"condition", "participant_id"} <= set(responses.columns)
        else {}
    )
    for plan in sample_plan(study=study):
        n = analysed.get(plan.condition, 0)
        if plan.planned is not None and n < plan.planned:
            basis = "its quota" if plan.basis == "quota" else "the power calculation"
            deviations.append(
                f"{plan.condition}: {n} analysed participant(s) of {plan.planned} planned "
                f"({basis}); the sample fell short of the plan"
                + (" so far (the study is still open)." if study.accepts_participants else ".")
            )
    primary = study.primary_comparison
    if primary and primary not in set(report.comparisons.get("condition", [])):
        deviations.append(f'The primary comparison ("{primary}") has no result.')
    return PreregistrationCheck(
        design_hash=study.design_hash, analyses=_sections(report), deviations=deviations
    )


def preregistration_lines(check: PreregistrationCheck | None) -> list[str]:
    """The check in the text report."""
    if check is None:
        return ["", "Preregistration: none (a draft's design is not frozen)."]
    lines = ["", f"Preregistration (design {check.design_hash[:12]})"]
    lines += [f"  {name}: {status}" for name, status in check.analyses]
    lines += [f"  Deviation: {deviation}" for deviation in check.deviations]
    if not check.deviations:
        lines.append("  No deviation from the plan.")
    return lines
