"""The study report and the CSV export, shared by the command line and the results page.

The report's tables are built in ``analysis.report_tables``; this module reads the frames,
chooses what applies to the study and assembles :class:`StudyReport`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Required, TypedDict

import numpy as np
import pandas as pd

from analysis import stats
from analysis.cells import cell_float
from analysis.frames import (
    CHUNK_SIZE,
    DATETIME_COLUMNS,
    RESPONSE_COLUMNS,
    LedgerStep,
    analysed_mask,
    article_scores_frame,
    detector_gaps,
    exclusion_ledger,
    exclusion_rule_steps,
    participant_answers_frame,
    participants_frame,
    responses_chunks,
    responses_frame,
)
from analysis.preregistered import PreregistrationCheck, preregistration_check
from analysis.report_tables import (
    INDEX_TEST_COLUMNS,
    POWER_COLUMNS,
    answer_tests,
    article_credibility,
    detection_binomial,
    detection_summary,
    detector_gap_notes,
    detector_tables,
    group_tests,
    index_tests,
    people_versus_best_detector,
    power_table,
    replication_table,
    with_participant_d_prime,
)
from analysis.spreadsheet import frame_for_spreadsheet
from studyplatform.measures import scoring
from surveys.instruments import PREFER_NOT
from surveys.models import Article, Question, Study


@dataclass(frozen=True)
class StudyReport:
    """Everything the results page and ``manage.py analyze`` show about one study.

    Only completed, non-test participants whom no exclusion rule removed are analysed;
    ``ledger`` says how many were removed at each step, one step per rule.
    ``binary_question`` is the key of the yes/no question the proportions are about
    (``None`` when the study has none);
    ``reference`` is the control condition's name (``None`` when there is none)."""

    study_slug: str
    study_title: str
    ledger: list[LedgerStep]
    binary_question: str | None
    reference: str | None
    proportions: pd.DataFrame
    comparisons: pd.DataFrame
    likert: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    # Logistic regression of the yes/no answer on condition, participant-clustered errors
    # (None when it cannot be fitted; the reason is in ``notes``).
    regression: stats.LogisticFit | None = None
    # One row per comparison: ``POWER_COLUMNS``.
    power: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=POWER_COLUMNS))
    # The Kreps et al. credibility index (1-10), present when the study asks believable,
    # accurate and clear: one row per participant-article (``stats.INDEX_COLUMNS``), the
    # mean per condition (``stats.MEAN_COLUMNS``), each condition against the reference
    # (``INDEX_TEST_COLUMNS``), tests across all conditions and Cronbach's alpha.
    index: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=stats.INDEX_COLUMNS))
    index_means: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=stats.MEAN_COLUMNS)
    )
    index_tests: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=INDEX_TEST_COLUMNS)
    )
    index_across: list[stats.GroupTest] = field(default_factory=list)
    index_alpha: float | None = None
    has_index_items: bool = False  # the study has three credibility items (Question.scoring)
    # Detection designs ("human or machine?"), present when a per-article question has a
    # detection definition (``Question.scoring``, role "detection"): per-participant accuracy
    # (``stats.DETECTION_COLUMNS`` plus ``condition``) and a per-condition summary
    # (``DETECTION_SUMMARY_COLUMNS``).
    detection: pd.DataFrame | None = None
    detection_summary: pd.DataFrame | None = None
    # Per-response seconds from first shown to answered, for plots (one row per
    # participant-article: participant_id, article_id, condition, seconds).
    responses: pd.DataFrame = field(default_factory=pd.DataFrame)
    # Detector scores (``surveys.ArticleScore``), present when any of the study's articles
    # has one: ROC AUCs of participants and of each score (``DETECTOR_COLUMNS``) and the
    # articles where participants and the default score disagree most
    # (``DISAGREEMENT_COLUMNS``; None without a yes/no question). See ``detector_tables``.
    detectors: pd.DataFrame | None = None
    disagreements: pd.DataFrame | None = None
    # The best detector score against the participants on the same articles (DeLong's
    # paired test, ``PEOPLE_VS_DETECTOR_COLUMNS``) and the articles the two disagree most
    # about (``BEST_DISAGREEMENT_COLUMNS``). See ``people_versus_best_detector``.
    people_vs_detector: pd.DataFrame | None = None
    best_disagreements: pd.DataFrame | None = None
    # Logistic mixed model with crossed participant and article random intercepts, when
    # participants gave two or more ratings (None otherwise, or when it failed: see
    # ``notes``), and condition x moderator regressions (party ID, ideology, disclaimer).
    # See ``repeated_ratings_model`` and ``moderator_models``.
    mixed: stats.MixedLogisticFit | None = None
    moderators: list[stats.ModeratorFit] = field(default_factory=list)
    # More than two conditions (``report_tables.group_tests``): with three or more, the
    # omnibus chi-square of equal "yes" shares and every pair of conditions compared
    # (``stats.PAIRWISE_COLUMNS``) with the study's preregistered correction
    # (``multiple_comparisons``, "holm" or "bh"). The r x c chi-square of each
    # multi-option question about the articles by condition (``answer_tests``: key and
    # test), and detection accuracy against 50% (``detection_binomial``,
    # ``report_tables.DETECTION_BINOMIAL_COLUMNS``).
    multiple_comparisons: str = stats.HOLM
    omnibus: stats.ContingencyTest | None = None
    pairwise: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=stats.PAIRWISE_COLUMNS)
    )
    answer_tests: list[tuple[str, stats.ContingencyTest]] = field(default_factory=list)
    detection_binomial: pd.DataFrame | None = None
    # A replication of a published result (``report_tables.replication_table``), present
    # when the study records one (``Study.original_citation``, an equivalence bound, or
    # an original rate or size on a condition) and has a reference condition: the
    # original estimate, this study's and the two replication tests per condition
    # (``REPLICATION_COLUMNS``); ``replication_citation`` is the researcher's free text.
    replication: pd.DataFrame | None = None
    replication_citation: str = ""
    # Against the preregistration (``analysis.preregistered``): which analyses were
    # planned and which are exploratory, and every departure from the plan; None for a
    # draft, which has no frozen design to hold it to.
    preregistration: PreregistrationCheck | None = None

    @property
    def analysed(self) -> int:
        return self.ledger[-1].remaining


def binary_question_for(*, study: Study) -> Question | None:
    """The yes/no question credibility rates are computed from: the one whose stored
    scoring definition has role "credible" if there is one, otherwise the first binary
    question about the articles."""
    binary = study.questions.filter(
        scope=Question.Scope.PER_ARTICLE, kind=Question.Kind.BINARY
    ).order_by("position", "id")
    return binary.filter(scoring__role=scoring.CREDIBLE).first() or binary.first()


# The columns of the long frame the report reads: the rest (tokens, article metadata,
# row timestamps) is for the exports, and loading them doubled the report's load time.
REPORT_RESPONSE_COLUMNS = [
    "participant_id",
    "condition",
    "article_id",
    "article_origin",
    "question_key",
    "question_kind",
    "value",
    "value_numeric",
    "first_shown_at",
    "answered_at",
]


def study_report(*, study: Study, mixed_max_ratings: int | None = None) -> StudyReport:
    """Credibility rates with Wilson (and Clopper-Pearson) intervals per condition, each
    condition against the reference (z, chi-square, Fisher, Newcombe interval of the
    difference, Holm-adjusted p, odds ratio), a logistic regression on condition with
    participant-clustered errors, the power each comparison had and the n 80% power
    would need, and mean ratings per Likert question, over the analysed participants
    only. ``mixed_max_ratings``: the most yes/no ratings the mixed model is fitted to
    (default ``MIXED_MODEL_MAX_RATINGS``, sized for a page load)."""
    participants = participants_frame(study=study)
    ledger = exclusion_ledger(participants, rules=exclusion_rule_steps(study=study))
    analysed_ids = set(participants.loc[analysed_mask(participants), "participant_id"])
    responses = responses_frame(study=study, columns=REPORT_RESPONSE_COLUMNS)
    responses = responses.loc[responses["participant_id"].isin(analysed_ids)]

    notes: list[str] = []
    question = binary_question_for(study=study)
    reference_condition = study.conditions.filter(is_reference=True).first()
    reference = reference_condition.name if reference_condition else None

    proportions = pd.DataFrame(columns=stats.PROPORTION_COLUMNS)
    comparisons = pd.DataFrame(columns=stats.COMPARISON_COLUMNS)
    regression: stats.LogisticFit | None = None
    binary: pd.DataFrame | None = None
    if question is None:
        notes.append("The study has no yes/no question about the articles.")
    else:
        binary = responses.loc[responses["question_key"] == question.key]
        proportions = stats.proportions_by_condition(binary)
        # The reference first, then the others by name: the order every table reads in.
        if reference is not None:
            proportions = pd.concat(
                [
                    proportions.loc[proportions["condition"] == reference],
                    proportions.loc[proportions["condition"] != reference],
                ],
                ignore_index=True,
            )
        if reference is None:
            notes.append("No condition is marked as the reference, so nothing is compared.")
        elif reference not in set(proportions["condition"]):
            notes.append(f'The reference condition "{reference}" has no analysed answers yet.')
        elif len(proportions) > 1:
            comparisons = stats.compare_to_reference(binary, reference)
            try:
                regression = stats.logistic_regression(binary, reference)
            except ValueError as error:
                notes.append(f"No logistic regression: {error}")

    mixed: stats.MixedLogisticFit | None = None
    moderators: list[stats.ModeratorFit] = []
    if binary is not None and reference is not None and not comparisons.empty:
        mixed = repeated_ratings_model(
            binary=binary, reference=reference, notes=notes, max_ratings=mixed_max_ratings
        )
        moderators = moderator_models(study=study, binary=binary, reference=reference, notes=notes)
    likert = stats.likert_means(responses.loc[responses["question_kind"] == Question.Kind.LIKERT])
    if reference is not None and not likert.empty:
        likert = likert.sort_values(
            ["condition", "question_key"],
            key=lambda column: column != reference if column.name == "condition" else column,
            kind="stable",
        ).reset_index(drop=True)
    extra = _scale_and_detection(study=study, responses=responses, reference=reference)
    omnibus, pairwise = (
        group_tests(binary, method=study.multiple_comparisons)
        if binary is not None
        else (None, pd.DataFrame(columns=stats.PAIRWISE_COLUMNS))
    )
    detectors: pd.DataFrame | None = None
    disagreements: pd.DataFrame | None = None
    people_vs_detector: pd.DataFrame | None = None
    best_disagreements: pd.DataFrame | None = None
    scores = article_scores_frame(study=study)
    if not scores.empty:
        human = article_credibility(binary) if binary is not None else None
        detectors, disagreements = detector_tables(scores=scores, human=human)
        people_vs_detector, best_disagreements = people_versus_best_detector(
            scores=scores, human=human
        )
        notes.extend(detector_gap_notes(detector_gaps(study=study)))
    report = StudyReport(
        study_slug=study.slug,
        study_title=study.title,
        ledger=ledger,
        binary_question=question.key if question else None,
        reference=reference,
        proportions=proportions,
        comparisons=comparisons,
        likert=likert,
        notes=notes,
        regression=regression,
        power=power_table(comparisons),
        detectors=detectors,
        disagreements=disagreements,
        people_vs_detector=people_vs_detector,
        best_disagreements=best_disagreements,
        mixed=mixed,
        moderators=moderators,
        multiple_comparisons=study.multiple_comparisons,
        omnibus=omnibus,
        pairwise=pairwise,
        answer_tests=answer_tests(responses, questions=_choice_questions(study=study)),
        replication=_replication(
            study=study, proportions=proportions, comparisons=comparisons, reference=reference
        ),
        replication_citation=study.original_citation,
        **extra,
    )
    return replace(report, preregistration=preregistration_check(study=study, report=report))


def _replication(
    *, study: Study, proportions: pd.DataFrame, comparisons: pd.DataFrame, reference: str | None
) -> pd.DataFrame | None:
    """The replication table when the study records an original result, else None."""
    originals = {c.name: (c.original_rate, c.original_n) for c in study.conditions.order_by("name")}
    recorded = any(rate is not None or n is not None for rate, n in originals.values())
    if reference is None or not (
        recorded or study.original_citation or study.equivalence_bound is not None
    ):
        return None
    return replication_table(
        proportions=proportions,
        comparisons=comparisons,
        reference=reference,
        originals=originals,
        bound=study.equivalence_bound,
    )


def _choice_questions(*, study: Study) -> list[tuple[str, list[str]]]:
    """The single-choice questions about the articles, with their options in order."""
    questions = study.questions.filter(
        scope=Question.Scope.PER_ARTICLE, kind=Question.Kind.CHOICE
    ).order_by("position", "id")
    return [
        (q.key, [str(option) for option in q.choices] if isinstance(q.choices, list) else [])
        for q in questions
    ]


# ---------------------------------------------------------------------------------------
# Mixed model and moderators

PARTY_KEY = "party_id"  # keys of the demographics instrument (surveys.instruments)
IDEOLOGY_KEY = "ideology"
# The Laplace fit takes about 15 ms of CPU per 1,000 ratings (2.3-3.1 s for 200,000 and
# 15-19 s for 1,000,000 simulated ratings with one BLAS thread; threaded OpenBLAS on a
# busy machine made it 4x slower): the page fits up to MIXED_MODEL_MAX_RATINGS, the
# ``analyze`` command, which nobody waits on in a browser, up to the offline cap.
MIXED_MODEL_MAX_RATINGS = 200_000
MIXED_MODEL_MAX_RATINGS_OFFLINE = 2_000_000


def repeated_ratings_model(
    *,
    binary: pd.DataFrame,
    reference: str,
    notes: list[str],
    max_ratings: int | None = None,
) -> stats.MixedLogisticFit | None:
    """The logistic mixed model (``stats.mixed_logistic_regression``: participant and
    article random intercepts) when some participant gave two or more yes/no ratings;
    None otherwise. Above ``max_ratings`` (default ``MIXED_MODEL_MAX_RATINGS``, what a
    page load affords) it is skipped with a note. A fit that fails or does not converge
    is reported in ``notes`` (and not returned), never raised."""
    cap = MIXED_MODEL_MAX_RATINGS if max_ratings is None else max_ratings
    answered = binary.loc[binary["value_numeric"].notna()]
    if answered.empty or answered.groupby("participant_id").size().max() < 2:
        return None
    if len(answered) > cap:
        where = (
            "run `manage.py analyze <slug>` (it fits up to "
            f"{MIXED_MODEL_MAX_RATINGS_OFFLINE:,}) or fit it"
            if cap < MIXED_MODEL_MAX_RATINGS_OFFLINE
            else "fit it"
        )
        notes.append(
            f"No mixed-effects model in this report: {len(answered):,} ratings are more than "
            f"the {cap:,} it fits here; {where} from the long export "
            "(analysis.stats.mixed_logistic_regression, or lme4::glmer in R)."
        )
        return None
    groups: tuple[str, ...] = ("participant_id", "article_id")
    if answered["article_id"].nunique() < 2:
        groups = ("participant_id",)
    try:
        fit = stats.mixed_logistic_regression(answered, reference, groups=groups)
    except (ValueError, np.linalg.LinAlgError, FloatingPointError) as error:
        notes.append(f"No mixed-effects model: {error}")
        return None
    if not fit.converged:
        notes.append(f"No mixed-effects model: {fit.message}.")
        return None
    if fit.singular:
        zero = ", ".join(
            str(row.group) for row in fit.random_effects.itertuples() if cell_float(row.sd) < 1e-4
        )
        notes.append(
            f"Mixed-effects model: the random-intercept SD of {zero} is estimated at zero "
            "(a singular fit); the fixed effects are then those of a simpler model."
        )
    return fit


def _moderator_frame(*, study: Study, binary: pd.DataFrame) -> pd.DataFrame:
    """``binary`` with the participant's party ID (``PREFER_NOT`` as missing), ideology
    (1-7, numeric) and whether their condition showed a disclaimer, as columns."""
    answers = participant_answers_frame(study=study, keys=[PARTY_KEY, IDEOLOGY_KEY])
    frame = binary.copy()
    party = answers.loc[answers["question_key"] == PARTY_KEY].set_index("participant_id")["value"]
    party = party.where(party != PREFER_NOT)
    ideology = answers.loc[answers["question_key"] == IDEOLOGY_KEY].set_index("participant_id")[
        "value_numeric"
    ]
    frame[PARTY_KEY] = frame["participant_id"].map(party)
    frame[IDEOLOGY_KEY] = frame["participant_id"].map(ideology)
    shown = {
        name: "shown" if text.strip() else "none"
        for name, text in study.conditions.values_list("name", "disclaimer")
    }
    frame["disclaimer"] = frame["condition"].map(shown)
    return frame


def moderator_models(
    *, study: Study, binary: pd.DataFrame, reference: str, notes: list[str]
) -> list[stats.ModeratorFit]:
    """Condition x moderator logistic regressions with participant-clustered errors
    (``stats.moderator_logistic_regression``): party ID (categorical) and ideology
    (numeric, 1-7) when the study asks them once per participant, and article origin
    (real vs generated) x disclaimer when some conditions show a disclaimer and others do
    not. Each one that cannot be fitted is explained in ``notes`` instead."""
    keys = set(
        study.questions.filter(scope=Question.Scope.PARTICIPANT).values_list("key", flat=True)
    )
    disclaimers = {
        bool(text.strip()) for text in study.conditions.values_list("disclaimer", flat=True)
    }
    wanted: list[tuple[str, dict[str, object]]] = []
    if PARTY_KEY in keys:
        wanted.append(("party ID", {"moderator": PARTY_KEY}))
    if IDEOLOGY_KEY in keys:
        wanted.append(("ideology", {"moderator": IDEOLOGY_KEY, "numeric": True}))
    if disclaimers == {True, False}:
        wanted.append(
            (
                "disclaimer",
                {
                    "moderator": "disclaimer",
                    "moderator_reference": "none",
                    "factor": "article_origin",
                },
            )
        )
    if not wanted:
        return []
    frame = _moderator_frame(study=study, binary=binary)
    fits: list[stats.ModeratorFit] = []
    for label, options in wanted:
        by_origin = options.get("factor") == "article_origin"
        try:
            fits.append(
                stats.moderator_logistic_regression(
                    frame,
                    Article.Origin.REAL if by_origin else reference,
                    str(options["moderator"]),
                    numeric=bool(options.get("numeric", False)),
                    moderator_reference=(
                        str(options["moderator_reference"])
                        if "moderator_reference" in options
                        else None
                    ),
                    factor=str(options.get("factor", "condition")),
                )
            )
        except (ValueError, np.linalg.LinAlgError) as error:
            notes.append(f"No {label} moderator analysis: {error}")
    return fits


class _ScaleAndDetection(TypedDict, total=False):
    """The keyword arguments of ``StudyReport`` that ``_scale_and_detection`` fills."""

    responses: Required[pd.DataFrame]
    has_index_items: bool
    index: pd.DataFrame
    index_means: pd.DataFrame
    index_tests: pd.DataFrame
    index_across: list[stats.GroupTest]
    index_alpha: float | None
    detection: pd.DataFrame | None
    detection_summary: pd.DataFrame | None
    detection_binomial: pd.DataFrame | None


def _scale_and_detection(
    *, study: Study, responses: pd.DataFrame, reference: str | None
) -> _ScaleAndDetection:
    """The credibility index with its tests and reliability, the detection tables, and
    per-trial seconds, as keyword arguments of ``StudyReport``."""
    extra: _ScaleAndDetection = {"responses": _trial_seconds(responses)}
    # What to score comes from the questions' stored definitions (``Question.scoring``),
    # not their keys, so custom keys and option wordings are scored too.
    scored = list(
        study.questions.filter(scope=Question.Scope.PER_ARTICLE)
        .exclude(scoring={})
        .order_by("position", "id")
    )
    items = [q.key for q in scored if q.scoring.get("role") == scoring.CREDIBILITY_ITEM]
    # The Kreps index sums exactly three 1-4 items. Custom-keyed items are renamed to the
    # conventional names, in the questions' order, so the index table keeps its columns
    # (believable, accurate, clear); conventionally keyed ones keep their own names.
    if len(items) == len(stats.CREDIBILITY_ITEMS):
        names = (
            dict(zip(items, items, strict=True))
            if set(items) == set(stats.CREDIBILITY_ITEMS)
            else dict(zip(items, stats.CREDIBILITY_ITEMS, strict=True))
        )
        # Only the items' rows: another question keyed "believable" (no longer an item)
        # must not be read as one.
        item_rows = responses.loc[responses["question_key"].isin(items)]
        renamed = item_rows.assign(question_key=item_rows["question_key"].replace(names))
        index = stats.credibility_index(renamed)
        extra["has_index_items"] = True
        extra["index"] = index
        extra["index_means"] = _reference_first(stats.means_by_condition(index), reference)
        extra["index_tests"] = index_tests(index, reference)
        groups: dict[str, np.ndarray | pd.Series | list[float]] = {
            str(c): g["index"].to_numpy(dtype=float) for c, g in index.groupby("condition")
        }
        across: list[stats.GroupTest] = []
        if len(groups) >= 2:
            try:
                across = [stats.one_way_anova(groups), stats.kruskal_wallis(groups)]
            except ValueError:
                across = []
        extra["index_across"] = across
        extra["index_alpha"] = (
            stats.cronbach_alpha(index[list(stats.CREDIBILITY_ITEMS)]) if len(index) else None
        )
    # The first detection question the study asks, scored by its stored definition.
    detection = next((q for q in scored if q.scoring.get("role") == scoring.DETECTION), None)
    if detection is not None:
        answers = responses.loc[responses["question_key"] == detection.key]
        judge = scoring.detection_judge(detection.scoring)
        people, summary = detection_summary(answers, judge=judge)
        summary = with_participant_d_prime(summary, answers, judge=judge)
        extra["detection"] = people
        extra["detection_summary"] = _reference_first(summary, reference)
        extra["detection_binomial"] = _reference_first(detection_binomial(people), reference)
    return extra


def _reference_first(table: pd.DataFrame, reference: str | None) -> pd.DataFrame:
    if reference is None or table.empty:
        return table
    return pd.concat(
        [table.loc[table["condition"] == reference], table.loc[table["condition"] != reference]],
        ignore_index=True,
    )


def _trial_seconds(responses: pd.DataFrame) -> pd.DataFrame:
    """One row per participant-article with the seconds from first shown to answered
    (NaN when either time is missing) and every numeric answer as a column."""
    columns = ["participant_id", "article_id", "condition", "article_origin", "seconds"]
    if responses.empty:
        return pd.DataFrame(columns=columns)
    trials = responses.groupby(["participant_id", "article_id"], sort=False).agg(
        condition=("condition", "first"),
        article_origin=("article_origin", "first"),
        first_shown_at=("first_shown_at", "first"),
        answered_at=("answered_at", "first"),
    )
    trials["seconds"] = (trials["answered_at"] - trials["first_shown_at"]).dt.total_seconds()
    answers = responses.loc[responses["value_numeric"].notna()].pivot_table(
        index=["participant_id", "article_id"],
        columns="question_key",
        values="value_numeric",
        aggfunc="first",
    )
    answers.columns.name = None
    return trials[columns[2:]].join(answers).reset_index()


# ---------------------------------------------------------------------------------------
# CSV export


def responses_csv_chunks(
    *, study: Study, include_test: bool = False, chunk_size: int = CHUNK_SIZE
) -> Iterator[str]:
    """The long CSV (header, then one row per rating about an article, columns as
    ``analysis.frames.RESPONSE_COLUMNS``) as text pieces, one per chunk read from the
    database, so an export never holds the whole study in memory. The article ``url`` and
    ``license`` columns carry the attribution each Wikinews text needs. Text that a
    spreadsheet would run as a formula is prefixed with an apostrophe
    (``analysis.spreadsheet``)."""
    header = True
    for chunk in responses_chunks(study=study, include_test=include_test, chunk_size=chunk_size):
        for column in DATETIME_COLUMNS:
            chunk[column] = _iso_utc(chunk[column])
        yield frame_for_spreadsheet(chunk).to_csv(index=False, header=header, lineterminator="\n")
        header = False
    if header:  # no ratings yet: still a valid CSV with its columns
        yield ",".join(RESPONSE_COLUMNS) + "\n"


def _iso_utc(column: pd.Series) -> pd.Series:
    """ISO 8601 UTC text ("2019-08-20T12:00:00.000000Z"), empty when missing. numpy's
    formatter is an order of magnitude faster than pandas' for a million timestamps."""
    values = column.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[us]")
    text = np.datetime_as_string(values, unit="us", timezone="UTC")
    return pd.Series(np.where(column.isna().to_numpy(), "", text), index=column.index)
