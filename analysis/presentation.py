"""Turn a StudyReport into display strings, once, for the command line and the results page,
so both show the same numbers rounded the same way."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from analysis import stats
from analysis.cells import cell_float, cell_int
from analysis.preregistered import preregistration_lines
from analysis.services import StudyReport
from surveys.models import WIKINEWS_ATTRIBUTION


def pct(share: float, digits: int = 1) -> str:
    """0.8302 -> "83.0%"."""
    return "n/a" if _missing(share) else f"{100 * share:.{digits}f}%"


def pp(difference: float, digits: int = 1) -> str:
    """A difference of proportions in percentage points, signed: -0.11 -> "-11.0"."""
    return "n/a" if _missing(difference) else f"{100 * difference:+.{digits}f}"


def number(value: float, digits: int = 2) -> str:
    return "n/a" if _missing(value) else f"{value:.{digits}f}"


def p_value(value: float) -> str:
    """Three decimals, and "<0.001" below that (more digits would be false precision)."""
    if _missing(value):
        return "n/a"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _whole(value: float) -> str:
    """A whole number stored as a float (NaN where undefined): 35.0 -> "35"."""
    return "n/a" if _missing(value) else str(int(value))


def _missing(value: float | None) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class ProportionRow:
    condition: str
    is_reference: bool
    n: int
    successes: int
    share: str
    ci: str
    exact_ci: str


@dataclass(frozen=True)
class ComparisonRow:
    condition: str
    reference: str
    difference: str
    ci: str
    z: str
    p: str
    p_holm: str
    chi2: str
    chi2_p: str
    chi2_yates: str
    chi2_yates_p: str
    fisher_p: str
    cohens_h: str
    odds_ratio: str
    or_ci: str


@dataclass(frozen=True)
class LikertRow:
    condition: str
    question: str
    n: int
    mean: str
    sd: str
    ci: str


@dataclass(frozen=True)
class RegressionRow:
    term: str
    log_odds: str
    se: str
    z: str
    p: str
    odds_ratio: str
    ci: str


@dataclass(frozen=True)
class PowerRow:
    condition: str
    reference: str
    rates: str
    n: str
    power: str
    n_for_80: str
    n_for_80_cc: str = "n/a"  # with the continuity correction (Yates-corrected test)


@dataclass(frozen=True)
class IndexRow:
    condition: str
    is_reference: bool
    n: int
    mean: str
    sd: str
    ci: str


@dataclass(frozen=True)
class IndexTestRow:
    condition: str
    reference: str
    difference: str
    ci: str
    welch: str
    student: str


@dataclass(frozen=True)
class DetectionRow:
    condition: str
    participants: int
    accuracy: str
    unsure: str
    hit_rate: str
    false_alarm_rate: str
    d_prime: str
    criterion: str
    krippendorff_alpha: str
    mean_d_prime: str = "n/a"  # the mean of each participant's own d', with how many


@dataclass(frozen=True)
class DetectorRow:
    scorer: str
    condition: str
    score: str
    auc: str
    ci: str
    n: str


@dataclass(frozen=True)
class DisagreementRow:
    scorer: str
    article_id: int
    title: str
    origin: str
    condition: str
    credible_share: str
    score: str
    human_pct: str
    detector_pct: str
    gap: str


def detector_rows(report: StudyReport) -> list[DetectorRow]:
    """Participants and each detector score: ROC AUC for generated vs real, DeLong 95%."""
    if report.detectors is None:
        return []
    return [
        DetectorRow(
            scorer=str(row.scorer),
            condition=str(row.condition),
            score=str(row.score) if row.direction == stats.HIGHER else f"{row.score} (lower)",
            auc=number(cell_float(row.auc), 3),
            ci=f"[{number(cell_float(row.ci_low), 3)}, {number(cell_float(row.ci_high), 3)}]",
            n=f"{cell_int(row.n_pos)} vs {cell_int(row.n_neg)}",
        )
        for row in report.detectors.itertuples(index=False)
    ]


def disagreement_rows(report: StudyReport) -> list[DisagreementRow]:
    """The articles participants and the default detector score disagree most about."""
    if report.disagreements is None:
        return []
    return [
        DisagreementRow(
            scorer=str(row.scorer),
            article_id=cell_int(row.article_id),
            title=str(row.title),
            origin=str(row.article_origin),
            condition=str(row.condition),
            credible_share=pct(cell_float(row.credible_share)),
            score=number(cell_float(row.mean_logprob), 3),
            human_pct=number(cell_float(row.human_machine_likeness_pct), 0),
            detector_pct=number(cell_float(row.detector_machine_likeness_pct), 0),
            gap=f"{cell_float(row.gap):+.0f}",
        )
        for row in report.disagreements.itertuples(index=False)
    ]


def ixs(report: StudyReport) -> list[IndexRow]:
    """The credibility index (1-10) per condition, mean with its 95% t interval."""
    return [
        IndexRow(
            condition=str(row.condition),
            is_reference=row.condition == report.reference,
            n=cell_int(row.n),
            mean=number(cell_float(row.mean)),
            sd=number(cell_float(row.sd)),
            ci=f"[{number(cell_float(row.ci_low))}, {number(cell_float(row.ci_high))}]",
        )
        for row in report.index_means.itertuples(index=False)
    ]


def index_test_rows(report: StudyReport) -> list[IndexTestRow]:
    return [
        IndexTestRow(
            condition=str(row.condition),
            reference=str(row.reference),
            difference=f"{cell_float(row.difference):+.2f}",
            ci=f"[{number(cell_float(row.ci_low))}, {number(cell_float(row.ci_high))}]",
            welch=(
                f"t={number(cell_float(row.welch_t))}, "
                f"df={number(cell_float(row.welch_df), 1)}, "
                f"p={p_value(cell_float(row.welch_p))}"
            ),
            student=(
                f"t={number(cell_float(row.student_t))}, "
                f"df={number(cell_float(row.student_df), 0)}, "
                f"p={p_value(cell_float(row.student_p))}"
            ),
        )
        for row in report.index_tests.itertuples(index=False)
    ]


def index_across_lines(report: StudyReport) -> list[str]:
    """One line per test of the index across all conditions, and Cronbach's alpha."""
    lines = []
    for test in report.index_across:
        dfs = ", ".join(number(d, 0) for d in test.df)
        name = "F" if test.method == "one-way ANOVA" else "chi-squared"
        lines.append(
            f"{test.method}: {name}({dfs}) = {number(test.statistic)}, p = {p_value(test.p_value)}"
            f" ({test.groups} conditions, {test.n} ratings)"
        )
    if report.index_alpha is not None:
        lines.append(
            "Cronbach's alpha of believable, accurate and clear: "
            f"{number(report.index_alpha)} ({len(report.index)} ratings)"
        )
    return lines


def detection_rows(report: StudyReport) -> list[DetectionRow]:
    if report.detection_summary is None:
        return []
    return [
        DetectionRow(
            condition=str(row.condition),
            participants=cell_int(row.participants),
            accuracy=pct(cell_float(row.mean_accuracy)),
            unsure=pct(cell_float(row.mean_unsure_rate)),
            hit_rate=pct(cell_float(row.hit_rate)),
            false_alarm_rate=pct(cell_float(row.false_alarm_rate)),
            d_prime=number(cell_float(row.d_prime)),
            criterion=number(cell_float(row.criterion)),
            krippendorff_alpha=number(cell_float(row.krippendorff_alpha), 3),
            mean_d_prime=_mean_d_prime(row),
        )
        for row in report.detection_summary.itertuples(index=False)
    ]


def _mean_d_prime(row: object) -> str:
    count = getattr(row, "d_prime_participants", 0)
    mean = number(cell_float(getattr(row, "mean_participant_d_prime", math.nan)))
    return f"{mean} (n={cell_int(count)})" if count else "n/a"


def regression_rows(report: StudyReport) -> list[RegressionRow]:
    """The clustered logistic regression, odds ratios with their interval."""
    return [] if report.regression is None else _fit_rows(report.regression.table)


def pws(report: StudyReport) -> list[PowerRow]:
    return [
        PowerRow(
            condition=str(row.condition),
            reference=str(row.reference),
            rates=f"{pct(cell_float(row.share))} vs {pct(cell_float(row.reference_share))}",
            n=f"{cell_int(row.n)} vs {cell_int(row.reference_n)}",
            power=pct(cell_float(row.power)),
            n_for_80=_whole(cell_float(row.n_for_80)),
            n_for_80_cc=_whole(cell_float(getattr(row, "n_for_80_cc", math.nan))),
        )
        for row in report.power.itertuples(index=False)
    ]


def proportion_rows(report: StudyReport) -> list[ProportionRow]:
    return [
        ProportionRow(
            condition=str(row.condition),
            is_reference=row.condition == report.reference,
            n=cell_int(row.n),
            successes=cell_int(row.successes),
            share=pct(cell_float(row.share)),
            ci=f"[{pct(cell_float(row.ci_low))}, {pct(cell_float(row.ci_high))}]",
            exact_ci=f"[{pct(cell_float(row.exact_low))}, {pct(cell_float(row.exact_high))}]",
        )
        for row in report.proportions.itertuples(index=False)
    ]


def comparison_rows(report: StudyReport) -> list[ComparisonRow]:
    return [
        ComparisonRow(
            condition=str(row.condition),
            reference=str(row.reference),
            difference=f"{pp(cell_float(row.difference))} pp",
            ci=f"[{pp(cell_float(row.ci_low))}, {pp(cell_float(row.ci_high))}]",
            z=number(cell_float(row.z)),
            p=p_value(cell_float(row.p_value)),
            p_holm=p_value(cell_float(row.p_holm)),
            chi2=number(cell_float(row.chi2)),
            chi2_p=p_value(cell_float(row.chi2_p)),
            chi2_yates=number(cell_float(row.chi2_yates)),
            chi2_yates_p=p_value(cell_float(row.chi2_yates_p)),
            fisher_p=p_value(cell_float(row.fisher_p)),
            cohens_h=number(cell_float(row.cohens_h)),
            odds_ratio=number(cell_float(row.odds_ratio)),
            or_ci=f"[{number(cell_float(row.or_ci_low))}, {number(cell_float(row.or_ci_high))}]",
        )
        for row in report.comparisons.itertuples(index=False)
    ]


def lks(report: StudyReport) -> list[LikertRow]:
    return [
        LikertRow(
            condition=str(row.condition),
            question=str(row.question_key),
            n=cell_int(row.n),
            mean=number(cell_float(row.mean)),
            sd=number(cell_float(row.sd)),
            ci=f"[{number(cell_float(row.ci_low))}, {number(cell_float(row.ci_high))}]",
        )
        for row in report.likert.itertuples(index=False)
    ]


def _fit_rows(table: pd.DataFrame) -> list[RegressionRow]:
    return [
        RegressionRow(
            term=str(row.term),
            log_odds=number(cell_float(row.log_odds), 3),
            se=number(cell_float(row.se), 3),
            z=number(cell_float(row.z)),
            p=p_value(cell_float(row.p_value)),
            odds_ratio=number(cell_float(row.odds_ratio)),
            ci=f"[{number(cell_float(row.or_ci_low))}, {number(cell_float(row.or_ci_high))}]",
        )
        for row in table.itertuples(index=False)
    ]


def _fit_lines(rows: list[RegressionRow]) -> list[str]:
    """A fitted model's terms as terminal lines, terms aligned."""
    term_width = max(len(r.term) for r in rows)
    return [
        f"  {fr.term:<{term_width}}  log-odds {fr.log_odds:>7}  se {fr.se}  z={fr.z}  "
        f"p={fr.p}  odds {'' if fr.term == '(intercept)' else 'ratio '}{fr.odds_ratio} "
        f"{fr.ci}"
        for fr in rows
    ]


def mixed_rows(report: StudyReport) -> list[RegressionRow]:
    """The mixed model's fixed effects (log odds, odds ratios with 95% Wald intervals)."""
    return [] if report.mixed is None else _fit_rows(report.mixed.table)


def mixed_summary(report: StudyReport) -> str:
    """One line: what was fitted, on how much data, and the random-intercept SDs."""
    fit = report.mixed
    if fit is None:
        return ""
    sds = "; ".join(
        f"{row.group} SD {number(cell_float(row.sd))} ({cell_int(row.levels)} levels)"
        for row in fit.random_effects.itertuples(index=False)
    )
    return (
        f"Mixed-effects logistic regression of {report.binary_question} on condition "
        f"(reference {fit.reference}; {fit.n_obs} ratings; random intercepts on the "
        f"log-odds scale: {sds}; {fit.method}; effects are conditional on participant "
        "and article; Wald intervals, somewhat narrow when there are few articles)"
    )


@dataclass(frozen=True)
class ModeratorRow:
    moderator: str
    description: str
    test: str
    terms: list[RegressionRow]


def moderator_rows(report: StudyReport) -> list[ModeratorRow]:
    """Per moderator: the interaction terms (ratios of odds ratios) and the tests of
    "no moderation"."""
    rows = []
    for fit in report.moderators:
        kind = (
            "numeric, centred at its mean; per unit"
            if fit.numeric
            else f"reference level {fit.moderator_reference}"
        )
        left_out = f", {fit.dropped} ratings without an answer left out" if fit.dropped else ""
        terms = fit.table.loc[fit.table["term"].isin(fit.interactions)]
        rows.append(
            ModeratorRow(
                moderator=fit.moderator,
                description=(
                    f"condition x {fit.moderator} ({kind}); {fit.n_obs} ratings from "
                    f"{fit.n_clusters} participants{left_out}; errors clustered by participant"
                ),
                test=(
                    f"Wald chi2({fit.wald_df}) = {number(fit.wald_chi2)}, "
                    f"p = {p_value(fit.wald_p)}; likelihood ratio chi2({fit.wald_df}) = "
                    f"{number(fit.lr_chi2)}, p = {p_value(fit.lr_p)} (assumes independent ratings)"
                ),
                terms=_fit_rows(terms),
            )
        )
    return rows


def table_context(report: StudyReport) -> dict[str, object]:
    """Template context for ``analysis/_tables.html``: every table of the report as
    display rows (shared by the results page and the self-contained HTML report)."""
    from analysis.presentation_groups import group_context  # it imports this module
    from analysis.presentation_replication import replication_context  # likewise

    return {
        **group_context(report),
        **replication_context(report),
        "report": report,
        "proportions": proportion_rows(report),
        "comparisons": comparison_rows(report),
        "likert": lks(report),
        "regression": regression_rows(report),
        "power": pws(report),
        "index": ixs(report),
        "index_tests": index_test_rows(report),
        "index_across": index_across_lines(report),
        "detection": detection_rows(report),
        "detectors": detector_rows(report),
        "disagreements": disagreement_rows(report),
        "mixed": mixed_rows(report),
        "mixed_summary": mixed_summary(report),
        "moderators": moderator_rows(report),
        **_people_vs_detector(report),
    }


def _people_vs_detector(report: StudyReport) -> dict[str, object]:
    # Imported here: that module formats with this one's number formats.
    from analysis.presentation_detectors import people_vs_detector_context

    return people_vs_detector_context(report)


def report_as_html(report: StudyReport) -> str:
    """One self-contained HTML file: every table, the exclusion ledger, the plots inlined
    as SVG and the Wikinews attribution, with no external asset (it opens offline and can
    be attached to an e-mail or a preregistration)."""
    from django.template.loader import render_to_string
    from django.utils import timezone

    from analysis import plots  # matplotlib is heavy; only this page needs it

    figures = [(title, plots.inline_svg(report, name)) for name, title in plots.PLOT_TITLES.items()]
    return render_to_string(
        "analysis/report_standalone.html",
        {
            **table_context(report),
            "figures": figures,
            "attribution": WIKINEWS_ATTRIBUTION,
            "generated_at": timezone.now().strftime("%Y-%m-%d %H:%M UTC"),
        },
    )


def report_as_text(report: StudyReport) -> str:
    """The plain-text report printed by ``manage.py analyze``: one section after another,
    each left out when the study has nothing for it."""
    from analysis.presentation_detectors import people_vs_detector_lines
    from analysis.presentation_groups import detection_binomial_lines, group_lines
    from analysis.presentation_replication import replication_lines

    name_width = max([len(r.condition) for r in proportion_rows(report)] + [4])
    binomial = detection_binomial_lines(report)
    lines = [
        *_ledger_lines(report),
        *_credibility_lines(report, name_width),
        *group_lines(report),
        *replication_lines(report),
        *_model_lines(report),
        *_power_lines(report),
        *_rating_lines(report, name_width),
        *_detection_lines(report, name_width),
        *(["", *binomial] if binomial else []),
        *_detector_lines(report),
        *people_vs_detector_lines(report),
        *preregistration_lines(report.preregistration),
    ]
    for note in report.notes:
        lines += ["", f"Note: {note}"]
    return "\n".join(lines) + "\n"


def _ledger_lines(report: StudyReport) -> list[str]:
    lines = [f"Study: {report.study_title} ({report.study_slug})", "", "Exclusions"]
    width = max(len(step.label) for step in report.ledger)
    for step in report.ledger:
        excluded = f"-{step.excluded}" if step.key not in ("recruited", "analysed") else ""
        lines.append(f"  {step.label:<{width}}  {excluded:>6}  {step.remaining:>6}")
    return lines


def _credibility_lines(report: StudyReport, name_width: int) -> list[str]:
    lines = ["", f'Credibility ("{report.binary_question or "none"}" answered yes)']
    proportions = proportion_rows(report)
    if not proportions:
        lines.append("  no analysed answers yet")
    for r in proportions:
        marker = "  (reference)" if r.is_reference else ""
        lines.append(
            f"  {r.condition:<{name_width}}  n={r.n:<5}  {report.binary_question} "
            f"{r.share} {r.ci} (exact {r.exact_ci}){marker}"
        )
    comparisons = comparison_rows(report)
    if comparisons:
        lines += ["", "Comparisons with the reference (difference, 95% Newcombe interval)"]
    for c in comparisons:
        lines.append(
            f"  {c.condition} vs {c.reference}: diff {c.difference} {c.ci}, z={c.z}, "
            f"p={c.p} (Holm {c.p_holm}), chi2={c.chi2} (p={c.chi2_p}), "
            f"Yates chi2={c.chi2_yates} (p={c.chi2_yates_p}), Fisher p={c.fisher_p}, "
            f"h={c.cohens_h}, OR={c.odds_ratio} {c.or_ci}"
        )
    return lines


def _model_lines(report: StudyReport) -> list[str]:
    """The logistic regression, the mixed model and the moderator models."""
    lines: list[str] = []
    regression = regression_rows(report)
    if regression and report.regression is not None:
        fit = report.regression
        lines += [
            "",
            f"Logistic regression of {report.binary_question} on condition "
            f"(reference {fit.reference}; {fit.n_obs} ratings, {fit.n_clusters} participants; "
            "participant-clustered standard errors)",
        ]
        lines += _fit_lines(regression)
    mixed = mixed_rows(report)
    if mixed:
        lines += ["", mixed_summary(report), *_fit_lines(mixed)]
    for md in moderator_rows(report):
        lines += ["", f"Moderator: {md.description}", f"  {md.test}"]
        for fr in md.terms:
            lines.append(
                f"  {fr.term}: log ratio of odds ratios {fr.log_odds} (se {fr.se}), "
                f"ratio {fr.odds_ratio} {fr.ci}, p={fr.p}"
            )
    return lines


def _power_lines(report: StudyReport) -> list[str]:
    lines: list[str] = []
    power = pws(report)
    if power:
        lines += [
            "",
            "Power of each comparison (two-sided z test, alpha 0.05, at the observed rates)",
        ]
    for pw in power:
        lines.append(
            f"  {pw.condition} vs {pw.reference}: {pw.rates}, n {pw.n}: power {pw.power}; "
            f"n per condition for 80% power at these observed rates: {pw.n_for_80} "
            f"(z test, no continuity correction; {pw.n_for_80_cc} for the Yates-corrected "
            "chi-square)"
        )
    # A fixed yardstick: the rates of the GPT-2 774M release study (72% vs 83% credible).
    gpt2_n = math.ceil(stats.sample_size_two_proportions(0.72, 0.83, alpha=0.05, power=0.8))
    gpt2_cc = math.ceil(
        stats.sample_size_two_proportions(0.72, 0.83, power=0.8, continuity_correction=True)
    )
    lines += [
        "",
        f"Planning: detecting 72% vs 83% credible (GPT-2 774M vs real articles) with 80% "
        f"power needs {gpt2_n} ratings per condition (z test, no continuity correction; "
        f"{gpt2_cc} with it, for the Yates-corrected chi-square).",
    ]
    return lines


def _rating_lines(report: StudyReport, name_width: int) -> list[str]:
    """Likert means and the credibility index with its tests."""
    lines: list[str] = []
    likert = lks(report)
    if likert:
        lines += ["", "Ratings (mean, sd, 95% t interval)"]
    for lk in likert:
        lines.append(
            f"  {lk.condition:<{name_width}}  {lk.question:<12}  n={lk.n:<5}  mean {lk.mean}  "
            f"sd {lk.sd}  {lk.ci}"
        )
    index = ixs(report)
    if index:
        lines += [
            "",
            "Credibility index (believable + accurate + clear, 3-12, rescaled to 1-10: "
            "sum - 2; mean, sd, 95% t interval)",
        ]
    for ix in index:
        marker = "  (reference)" if ix.is_reference else ""
        lines.append(
            f"  {ix.condition:<{name_width}}  n={ix.n:<5}  mean {ix.mean}  sd {ix.sd}  "
            f"{ix.ci}{marker}"
        )
    for t in index_test_rows(report):
        lines.append(
            f"  {t.condition} vs {t.reference}: diff {t.difference} {t.ci}; "
            f"Welch {t.welch}; Student {t.student}"
        )
    lines += [f"  {line}" for line in index_across_lines(report)]
    return lines


def _detection_lines(report: StudyReport, name_width: int) -> list[str]:
    lines: list[str] = []
    detection = detection_rows(report)
    if detection:
        lines += [
            "",
            'Detection ("human or machine?"; accuracy = correct / non-neutral answers, '
            "\"I don't know\" reported apart; d' with the log-linear correction: pooled = "
            "of the condition's pooled hit and false-alarm rates, mean = the mean of each "
            "participant's own d')",
        ]
    for d in detection:
        lines.append(
            f"  {d.condition:<{name_width}}  participants={d.participants}  accuracy {d.accuracy}"
            f"  don't know {d.unsure}  hits {d.hit_rate}  false alarms {d.false_alarm_rate}"
            f"  pooled d'={d.d_prime}  c={d.criterion}  mean participant d'={d.mean_d_prime}"
            f"  Krippendorff alpha={d.krippendorff_alpha}"
        )
    return lines


def _detector_lines(report: StudyReport) -> list[str]:
    """Detector separation and the articles where participants and a detector disagree."""
    lines: list[str] = []
    detectors = detector_rows(report)
    if detectors:
        lines += [
            "",
            "Telling generated from real articles: ROC AUC (0.5 = chance) of participants "
            "(1 - credible share) and of each detector score, DeLong 95% interval, "
            "n generated vs real articles",
        ]
    for dr in detectors:
        lines.append(f"  {dr.scorer}  {dr.condition}  {dr.score}: AUC {dr.auc} {dr.ci}  n {dr.n}")
    disagreements = disagreement_rows(report)
    if disagreements:
        lines += [
            "",
            "Articles where participants and the detector (mean_logprob) disagree most "
            "(machine-likeness percentiles; gap = participants - detector)",
        ]
    for dg in disagreements:
        lines.append(
            f"  [{dg.scorer}] #{dg.article_id} {dg.origin} ({dg.condition}) "
            f'"{dg.title[:60]}": credible {dg.credible_share}, mean_logprob {dg.score}, '
            f"participants {dg.human_pct} vs detector {dg.detector_pct} (gap {dg.gap})"
        )
    return lines
