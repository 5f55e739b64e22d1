"""The preregistration of a study, written from its frozen design, and the check of a
report against it.

The document answers the AsPredicted questions (data collected?, hypothesis, dependent
variable, conditions, analyses, exclusions, sample size, other) from what the design
already holds: the researcher writes only the hypothesis and names the primary comparison
(``Study.hypotheses``, ``Study.primary_comparison``, frozen with the design); the rest -
conditions and stimuli, the sample-size plan and the power calculation behind it, the
exclusion rules in words, the analysis plan with its tests, model and correction - is
what Credence will do, so it is written out rather than typed twice. The design hash
ties the document to the design the participants saw.

``analysis.preregistered`` checks a report against it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.template.loader import render_to_string
from django.utils import timezone

from analysis.preregistered import SamplePlan, planned_rates, sample_plan
from analysis.services import binary_question_for
from surveys.exclusions import study_exclusion_rules
from surveys.models import Article, Participant, Question, Study
from surveys.selectors import PowerPlan, study_power_plan


@dataclass(frozen=True)
class ConditionPlan:
    name: str
    label: str
    is_reference: bool
    real: int
    generated: int
    models: tuple[str, ...]
    branding: str
    disclaimer: str
    quota: int | None


@dataclass(frozen=True)
class PlannedAnalysis:
    name: str
    description: str
    primary: bool


@dataclass(frozen=True)
class Preregistration:
    study: Study
    made_at: datetime
    design_hash: str
    data_collected: str
    hypotheses: str
    dependent: list[str]
    design: str
    conditions: list[ConditionPlan]
    analyses: list[PlannedAnalysis]
    exclusions: list[str]
    sample: list[SamplePlan]
    power_lines: list[str]


def _conditions(study: Study) -> list[ConditionPlan]:
    plans = []
    for condition in study.conditions.order_by("-is_reference", "name"):
        articles = list(condition.articles.values_list("origin", "model_name"))
        plans.append(
            ConditionPlan(
                name=condition.name,
                label=condition.label,
                is_reference=condition.is_reference,
                real=sum(origin == Article.Origin.REAL for origin, _ in articles),
                generated=sum(origin == Article.Origin.GENERATED for origin, _ in articles),
                models=tuple(sorted({m for origin, m in articles if m})),
                branding=condition.branding,
                disclaimer=condition.disclaimer,
                quota=condition.quota,
            )
        )
    return plans


def _power_lines(plan: PowerPlan, *, original_rates: bool) -> list[str]:
    lines = []
    for row in plan.rows:
        quota = (
            f"; at the quotas ({row.quota_reference} and {row.quota_condition}) the power "
            f"is {row.quota_power:.2f}"
            if row.quota_power is not None
            else ""
        )
        n = "no n (equal rates)" if row.n_needed is None else f"{row.n_needed} per condition"
        lines.append(
            f"{row.condition} against {row.reference}: credible shares of {row.p_condition:.2f} "
            f"and {row.p_reference:.2f} need {n} for {plan.power:.0%} power with a two-sided "
            f"two-proportion z test at alpha {plan.alpha} ({row.n_needed_cc or '-'} with the "
            f"continuity correction){quota}."
        )
    if plan.rows:
        source = (
            "the original study's, as recorded on the conditions"
            if original_rates
            else "those of the GPT-2 release study (Credence's default)"
        )
        lines.append(f"The planned credible shares are {source}.")
    return lines


def _analyses(study: Study, conditions: list[ConditionPlan]) -> list[PlannedAnalysis]:
    question = binary_question_for(study=study)
    key = question.key if question is not None else "(no yes/no question)"
    reference = next((c.name for c in conditions if c.is_reference), None)
    others = [c.name for c in conditions if not c.is_reference]
    holm = ", p-values Holm-adjusted over the comparisons with the reference"
    analyses = []
    for name in others:
        primary = not study.primary_comparison or name == study.primary_comparison
        analyses.append(
            PlannedAnalysis(
                name=f"{name} against {reference}",
                description=(
                    f'The share answering yes to "{key}" in {name} against {reference}: '
                    "two-sided two-proportion z test at alpha 0.05 (with the chi-square and "
                    "Fisher's exact test beside it), the 95% Newcombe interval of the "
                    "difference, the odds ratio" + (holm if len(others) > 1 else "") + "."
                ),
                primary=primary,
            )
        )
    analyses.append(
        PlannedAnalysis(
            name="logistic regression",
            description=(
                f'Logistic regression of "{key}" on condition (reference {reference}) with '
                "participant-clustered standard errors, as every participant rates several "
                "articles."
            ),
            primary=False,
        )
    )
    if len(conditions) >= 3:
        correction = Study.MultipleComparisons(study.multiple_comparisons).label
        analyses.append(
            PlannedAnalysis(
                name="all conditions",
                description=(
                    "A chi-square test of equal credible shares across all conditions, "
                    f"then every pair of conditions with p-values corrected by {correction}."
                ),
                primary=False,
            )
        )
    return analyses


def _data_collected(study: Study, as_of: datetime | None) -> str:
    participants = Participant.objects.for_study(study).real()
    if as_of is not None:
        participants = participants.filter(consented_at__lt=as_of)
    started = participants.count()
    when = "when this document was made" if as_of is None else "at the launch"
    if not started:
        return f"No. No participant had started {when}."
    status = "" if as_of is not None else f" (the study is {study.get_status_display().lower()})"
    return f"Yes: {started} participant(s) had started {when}{status}."


def preregistration(*, study: Study, as_of: datetime | None = None) -> Preregistration:
    """The preregistration of ``study``, written now, or as it read at ``as_of`` (the
    launch, for a replication archive: the design is the frozen one either way, and only
    the data collected by then and the date differ). Raises ValueError before the design
    is frozen (a draft): a preregistration of a design that can still change says
    nothing."""
    if not study.design_hash or study.status == Study.Status.DRAFT:
        raise ValueError("Pilot or launch the study first: that freezes the design.")
    # One power plan, at the original study's rates where recorded, for both the sample
    # plan and the lines that explain it.
    rates = planned_rates(study=study)
    plan = study_power_plan(study=study, rates=rates)
    conditions = _conditions(study)
    questions = study.questions.filter(scope=Question.Scope.PER_ARTICLE).order_by("position")
    per_participant = sum(c.per_participant for c in study.conditions.all())
    design = (
        f"Within subjects: each participant reads {per_participant} articles, some from "
        "each condition, never two versions of one story."
        if study.design == Study.Design.WITHIN
        else f"Between subjects: each participant is assigned one condition and reads "
        f"{study.articles_per_participant} of its articles."
    )
    return Preregistration(
        study=study,
        made_at=as_of or timezone.now(),
        design_hash=study.design_hash,
        data_collected=_data_collected(study, as_of),
        hypotheses=study.hypotheses,
        dependent=[f'"{q.key}" ({q.get_kind_display().lower()}): {q.text}' for q in questions],
        design=design,
        conditions=conditions,
        analyses=_analyses(study, conditions),
        exclusions=[
            "Test and preview sessions, participations not completed, and withdrawals are "
            "never analysed.",
            *(rule.label for rule in study_exclusion_rules(study=study)),
        ],
        sample=sample_plan(study=study, plan=plan),
        power_lines=_power_lines(plan, original_rates=bool(rates)),
    )


def preregistration_markdown(*, study: Study, as_of: datetime | None = None) -> str:
    document = preregistration(study=study, as_of=as_of)
    return render_to_string("analysis/preregistration.md", {"p": document}).strip() + "\n"


def preregistration_html(*, study: Study) -> str:
    return render_to_string("analysis/preregistration.html", {"p": preregistration(study=study)})
