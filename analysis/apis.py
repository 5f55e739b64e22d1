"""The analysts' read-only REST API under /api/ (HackSoft style: one view per operation,
nested ``InputSerializer`` for query parameters and ``OutputSerializer`` for rows).

Who may read a study is decided in one place, ``analysis.api_base.study_visible_to``,
through one permission class, ``CanViewStudyData``; the querysets the endpoints page
through are in ``analysis.selectors``. List endpoints answer CSV with
``?format=csv`` (or ``Accept: text/csv``); paginated ones then carry the next/previous
page in a ``Link`` header, since a CSV body has nowhere to put them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from analysis import stats
from analysis.api_base import (
    TABLE_RENDERERS,
    CanViewStudyData,
    RowsPagination,
    StudyAPIView,
    api_export_name,
    documented,
    frame_records,
)
from analysis.frames import (
    RESPONSE_COLUMNS,
    RESPONSE_FIELDS,
    articles_manifest_frame,
    participant_exclusion_reasons,
)
from analysis.report_tables import (
    BEST_DISAGREEMENT_COLUMNS,
    DETECTION_BINOMIAL_COLUMNS,
    DETECTOR_COLUMNS,
    DISAGREEMENT_COLUMNS,
    PEOPLE_VS_DETECTOR_COLUMNS,
    POWER_COLUMNS,
    REPLICATION_COLUMNS,
)
from analysis.selectors import (
    studies_listed_for,
    study_conditions,
    study_participants,
    study_responses,
)
from analysis.services import study_report
from surveys.audit import audit_export
from surveys.fraud import participation_signals
from surveys.models import Article, Participant, Question, Study

# ---------------------------------------------------------------------------------------
# Studies


class _ConditionSummarySerializer(serializers.Serializer):  # type: ignore[type-arg]
    name = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]  # DRF's metaclass pops fields; stub sees Field.label
    is_reference = serializers.BooleanField()
    quota = serializers.IntegerField(allow_null=True)
    per_participant = serializers.IntegerField()
    article_count = serializers.IntegerField()
    completed_participants = serializers.IntegerField(
        help_text="Completed, non-test participants assigned to this condition."
    )

    class Meta:
        ref_name = "Condition"


class _QuestionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    key = serializers.CharField()
    text = serializers.CharField()
    kind = serializers.ChoiceField(choices=Question.Kind.choices)
    scope = serializers.ChoiceField(choices=Question.Scope.choices)
    scale_min = serializers.IntegerField(allow_null=True)
    scale_max = serializers.IntegerField(allow_null=True)
    min_label = serializers.CharField()
    max_label = serializers.CharField()
    choices = serializers.ListField(child=serializers.CharField())
    required = serializers.BooleanField()  # type: ignore[assignment]  # DRF's metaclass pops fields; stub sees Field.required
    expected_answer = serializers.CharField()
    position = serializers.IntegerField()

    class Meta:
        ref_name = "Question"


class StudyListApi(APIView):
    """The studies the caller may read."""

    permission_classes = [CanViewStudyData]
    http_method_names = ["get", "head", "options"]
    renderer_classes = TABLE_RENDERERS

    class OutputSerializer(serializers.Serializer):  # type: ignore[type-arg]
        slug = serializers.SlugField()
        title = serializers.CharField()
        status = serializers.ChoiceField(choices=Study.Status.choices)
        design = serializers.ChoiceField(choices=Study.Design.choices)
        design_hash = serializers.CharField()
        launched_at = serializers.DateTimeField(allow_null=True)
        closed_at = serializers.DateTimeField(allow_null=True)
        created_at = serializers.DateTimeField()
        condition_count = serializers.IntegerField()
        participant_count = serializers.IntegerField(
            help_text="All participations, tests included."
        )

        class Meta:
            ref_name = "StudySummary"

    csv_columns = list(OutputSerializer().fields)

    @extend_schema(responses=documented(OutputSerializer(many=True), study=False))
    def get(self, request: Request) -> ApiResponse:
        studies = studies_listed_for(user=request.user)
        return ApiResponse(self.OutputSerializer(studies, many=True).data)


class StudyDetailApi(StudyAPIView):
    """One study: status, design version, conditions with their article counts, questions."""

    class OutputSerializer(serializers.Serializer):  # type: ignore[type-arg]
        slug = serializers.SlugField()
        title = serializers.CharField()
        status = serializers.ChoiceField(choices=Study.Status.choices)
        design = serializers.ChoiceField(choices=Study.Design.choices)
        design_hash = serializers.CharField(
            help_text="Hash of the design when it was locked; every participant records it."
        )
        articles_per_participant = serializers.IntegerField()
        seed = serializers.IntegerField()
        launched_at = serializers.DateTimeField(allow_null=True)
        closed_at = serializers.DateTimeField(allow_null=True)
        created_at = serializers.DateTimeField()
        conditions = _ConditionSummarySerializer(many=True)
        questions = _QuestionSerializer(many=True)

        class Meta:
            ref_name = "StudyDetail"

    @extend_schema(responses=documented(OutputSerializer))
    def get(self, request: Request, slug: str) -> ApiResponse:
        study = self.get_study(slug)
        nested = {
            "conditions": study_conditions(study=study),
            "questions": study.questions.order_by("scope", "position", "pk"),
        }
        plain = {
            name: getattr(study, name)
            # .items(): the stub types iterating a BindingDict as yielding fields, not names.
            for name, _field in self.OutputSerializer().fields.items()
            if name not in nested
        }
        return ApiResponse(self.OutputSerializer({**plain, **nested}).data)


class ConditionListApi(StudyAPIView):
    """The study's conditions with their article and completed-participant counts."""

    renderer_classes = TABLE_RENDERERS
    csv_columns = list(_ConditionSummarySerializer().fields)

    @extend_schema(responses=documented(_ConditionSummarySerializer(many=True)))
    def get(self, request: Request, slug: str) -> ApiResponse:
        study = self.get_study(slug)
        return ApiResponse(
            _ConditionSummarySerializer(study_conditions(study=study), many=True).data
        )


# ---------------------------------------------------------------------------------------
# Stimuli


class ArticleManifestApi(StudyAPIView):
    """The stimulus manifest: every article the study uses with its full provenance
    (``analysis.frames.articles_manifest_frame``; one row per article)."""

    renderer_classes = TABLE_RENDERERS

    class OutputSerializer(serializers.Serializer):  # type: ignore[type-arg]
        article_id = serializers.IntegerField()
        origin = serializers.ChoiceField(choices=Article.Origin.choices)
        title = serializers.CharField()
        outlet = serializers.CharField(allow_blank=True)
        url = serializers.CharField(allow_blank=True)
        published = serializers.CharField(allow_blank=True, help_text="ISO date, empty if unknown.")
        license = serializers.CharField(allow_blank=True)
        attribution = serializers.CharField(allow_blank=True)
        source_article_id = serializers.IntegerField(allow_null=True)
        source_article_title = serializers.CharField(allow_blank=True)
        source_article_url = serializers.CharField(allow_blank=True)
        model_name = serializers.CharField(allow_blank=True)
        conditions = serializers.CharField(help_text='Condition names separated by ";".')
        times_shown = serializers.IntegerField()
        sample_id = serializers.IntegerField(allow_null=True)
        sample_index = serializers.IntegerField(allow_null=True)
        sample_seed = serializers.IntegerField(allow_null=True)
        sample_new_tokens = serializers.IntegerField(allow_null=True)
        sample_review = serializers.CharField(allow_null=True)
        prompt = serializers.CharField(allow_null=True)
        run_id = serializers.IntegerField(allow_null=True)
        run_model_name = serializers.CharField(allow_null=True)
        run_prompt_kind = serializers.CharField(allow_null=True)
        run_max_new_tokens = serializers.IntegerField(allow_null=True)
        run_top_k = serializers.IntegerField(allow_null=True)
        run_top_p = serializers.FloatField(allow_null=True)
        run_temperature = serializers.FloatField(allow_null=True)
        run_seed = serializers.IntegerField(allow_null=True)
        sample_settings = serializers.CharField(allow_null=True, help_text="JSON text.")
        run_model_identity = serializers.CharField(allow_null=True, help_text="JSON text.")

        class Meta:
            ref_name = "ManifestArticle"

    csv_columns = list(OutputSerializer().fields)

    @extend_schema(responses=documented(OutputSerializer(many=True)))
    def get(self, request: Request, slug: str) -> ApiResponse:
        study = self.get_study(slug)
        frame = articles_manifest_frame(study=study)
        rows = frame_records(frame, self.csv_columns)
        return ApiResponse(self.OutputSerializer(rows, many=True).data)


# ---------------------------------------------------------------------------------------
# Participants and ratings


class _StudyFilterSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """Query parameters naming a condition or question must name one of this study's."""

    def validate_condition(self, value: str | None) -> str | None:
        study: Study = self.context["study"]
        if value is not None and not study.conditions.filter(name=value).exists():
            names = ", ".join(study.conditions.order_by("pk").values_list("name", flat=True))
            raise serializers.ValidationError(
                f'No condition "{value}" in this study (has: {names}).'
            )
        return value

    def validate_question_key(self, value: str | None) -> str | None:
        study: Study = self.context["study"]
        if value is not None and not study.questions.filter(key=value).exists():
            raise serializers.ValidationError(f'No question "{value}" in this study.')
        return value


class ParticipantListApi(StudyAPIView):
    """Participations, paginated, with their attention-check tallies (test sessions
    included unless filtered out with ``is_test=false``)."""

    renderer_classes = TABLE_RENDERERS
    pagination_class = RowsPagination

    class InputSerializer(_StudyFilterSerializer):
        condition = serializers.CharField(required=False, default=None)
        status = serializers.ChoiceField(
            choices=Participant.Status.choices, required=False, default=None
        )
        is_test = serializers.BooleanField(required=False, default=None, allow_null=True)

        class Meta:
            ref_name = "ParticipantFilter"

    class OutputSerializer(serializers.Serializer):  # type: ignore[type-arg]
        participant_id = serializers.IntegerField(source="pk")
        participant_token = serializers.UUIDField(source="token")
        panel = serializers.CharField()
        panel_pid = serializers.CharField()
        condition = serializers.CharField(source="condition.name", allow_null=True, default=None)
        status = serializers.ChoiceField(choices=Participant.Status.choices)
        is_test = serializers.BooleanField()
        design_hash = serializers.CharField()
        consented_at = serializers.DateTimeField()
        completed_at = serializers.DateTimeField(allow_null=True)
        checks_answered = serializers.IntegerField()
        checks_failed = serializers.IntegerField()
        passed_checks = serializers.SerializerMethodField()
        exclusion_reason = serializers.SerializerMethodField(
            help_text='The ledger step that removes the participant from the analysis ("" '
            "when analysed): test, incomplete, screened_out or a rule's key."
        )
        # The fraud and assisted-answering signals (surveys.fraud), as in the wide export.
        duplicate_browser = serializers.BooleanField(
            source="signals.duplicate_browser",
            help_text="Another participation of the study came from the same browser.",
        )
        network_burst = serializers.BooleanField(
            source="signals.network_burst",
            help_text="Arrived in a burst of participations from one network.",
        )
        honeypot_filled = serializers.BooleanField(
            source="signals.honeypot",
            help_text="Filled in the consent form's hidden field.",
        )
        article_copies = serializers.IntegerField(
            source="signals.copies",
            allow_null=True,
            help_text="Times article text was copied (null: no answer ran JavaScript).",
        )
        answer_pastes = serializers.IntegerField(
            source="signals.pastes",
            allow_null=True,
            help_text="Times something was pasted into a free-text answer (null: no answer "
            "ran JavaScript).",
        )
        javascript = serializers.BooleanField(
            source="signals.javascript",
            allow_null=True,
            help_text="Whether the answers ran JavaScript (null: no article answered yet).",
        )

        class Meta:
            ref_name = "Participant"

        def get_exclusion_reason(self, participant: Participant) -> str:
            return str(self.context["exclusion_reasons"][participant.pk])

        def get_passed_checks(self, participant: Participant) -> bool:
            # Not WithAnnotations[...]: drf-spectacular evaluates this signature's hints at
            # run time, where django_stubs_ext is not imported.
            return participant.checks_failed == 0  # type: ignore[attr-defined,no-any-return]

    csv_columns = list(OutputSerializer().fields)

    @extend_schema(
        parameters=[InputSerializer],
        responses=documented(OutputSerializer(many=True), filters=True),
    )
    def get(self, request: Request, slug: str) -> ApiResponse:
        study = self.get_study(slug)
        filters = self.InputSerializer(data=request.query_params, context={"study": study})
        filters.is_valid(raise_exception=True)
        audit_export(user=request.user, study=study, what=api_export_name(request, "participants"))
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(
            study_participants(study=study, **filters.validated_data), request, view=self
        )
        reasons = participant_exclusion_reasons(study=study, participants=page or [])
        signals = participation_signals(
            study=study, participants=Participant.objects.filter(pk__in=[p.pk for p in page or []])
        )
        for participant in page or []:
            participant.signals = signals[participant.pk]  # type: ignore[attr-defined]
        output = self.OutputSerializer(page, many=True, context={"exclusion_reasons": reasons})
        return paginator.get_paginated_response(output.data)


class ResponseListApi(StudyAPIView):
    """Ratings about articles, one row per rating, with the long CSV's columns
    (``analysis.frames.RESPONSE_COLUMNS``) and row order; test sessions are left out
    unless ``include_test=true``. Attention checks are in the participants endpoint."""

    renderer_classes = TABLE_RENDERERS
    pagination_class = RowsPagination
    csv_columns = RESPONSE_COLUMNS

    class InputSerializer(_StudyFilterSerializer):
        condition = serializers.CharField(required=False, default=None)
        question_key = serializers.CharField(required=False, default=None)
        article_origin = serializers.ChoiceField(
            choices=Article.Origin.choices, required=False, default=None
        )
        include_test = serializers.BooleanField(required=False, default=False)

        class Meta:
            ref_name = "ResponseFilter"

    class OutputSerializer(serializers.Serializer):  # type: ignore[type-arg]
        response_id = serializers.IntegerField()
        participant_id = serializers.IntegerField()
        participant_token = serializers.UUIDField()
        panel_pid = serializers.CharField()
        condition = serializers.CharField(allow_null=True)
        is_test = serializers.BooleanField()
        participant_status = serializers.ChoiceField(choices=Participant.Status.choices)
        article_id = serializers.IntegerField()
        article_origin = serializers.ChoiceField(choices=Article.Origin.choices)
        source_article_id = serializers.IntegerField(allow_null=True)
        model_name = serializers.CharField()
        outlet = serializers.CharField()
        url = serializers.CharField()
        license = serializers.CharField()
        trial_position = serializers.IntegerField()
        question_key = serializers.CharField()
        question_kind = serializers.ChoiceField(choices=Question.Kind.choices)
        value = serializers.CharField()
        value_numeric = serializers.FloatField(allow_null=True)
        first_shown_at = serializers.DateTimeField(allow_null=True)
        answered_at = serializers.DateTimeField(allow_null=True)
        created_at = serializers.DateTimeField()
        updated_at = serializers.DateTimeField()

        class Meta:
            ref_name = "Rating"

    @extend_schema(
        parameters=[InputSerializer],
        responses=documented(OutputSerializer(many=True), filters=True),
    )
    def get(self, request: Request, slug: str) -> ApiResponse:
        study = self.get_study(slug)
        filters = self.InputSerializer(data=request.query_params, context={"study": study})
        filters.is_valid(raise_exception=True)
        audit_export(user=request.user, study=study, what=api_export_name(request, "responses"))
        rows = study_responses(study=study, **filters.validated_data).values_list(
            *RESPONSE_FIELDS.values()
        )
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(rows, request, view=self)
        records = [dict(zip(RESPONSE_COLUMNS, row, strict=True)) for row in page or []]
        return paginator.get_paginated_response(self.OutputSerializer(records, many=True).data)


# ---------------------------------------------------------------------------------------
# Results

_TEXT_COLUMNS = {
    "condition",
    "reference",
    "question_key",
    "term",
    "scorer",
    "score",
    "direction",
    "method",
    "title",
    "article_origin",
    "other",
    "adjustment",
}
_COUNT_COLUMNS = {
    "n",
    "successes",
    "reference_n",
    "n_pos",
    "n_neg",
    "article_id",
    "other_n",
    "correct",
    "decided",
    "candidates",
}


def _table_serializer(name: str, columns: Sequence[str]) -> type[serializers.Serializer]:  # type: ignore[type-arg]
    """A serializer for one results table, built from its column list in
    ``analysis.stats`` so that a column added there shows up here (and in the schema)."""
    fields: dict[str, Any] = {}
    for column in columns:
        if column in _TEXT_COLUMNS:
            fields[column] = serializers.CharField()
        elif column in _COUNT_COLUMNS:
            fields[column] = serializers.IntegerField()
        else:
            fields[column] = serializers.FloatField(allow_null=True)
    fields["Meta"] = type("Meta", (), {"ref_name": name})
    return type(f"{name}Serializer", (serializers.Serializer,), fields)


class _LedgerStepSerializer(serializers.Serializer):  # type: ignore[type-arg]
    key = serializers.CharField()
    label = serializers.CharField()  # type: ignore[assignment]  # DRF's metaclass pops fields; stub sees Field.label
    excluded = serializers.IntegerField()
    remaining = serializers.IntegerField()

    class Meta:
        ref_name = "LedgerStep"


class _RegressionSerializer(serializers.Serializer):  # type: ignore[type-arg]
    reference = serializers.CharField()
    n_obs = serializers.IntegerField()
    n_clusters = serializers.IntegerField()
    cov_type = serializers.CharField()
    confidence = serializers.FloatField()
    table = _table_serializer("RegressionTerm", stats.LOGISTIC_COLUMNS)(many=True)

    class Meta:
        ref_name = "Regression"


class _AnalysisStatusSerializer(serializers.Serializer):  # type: ignore[type-arg]
    analysis = serializers.CharField()
    status = serializers.ChoiceField(choices=["planned", "exploratory"])

    class Meta:
        ref_name = "AnalysisStatus"


class _PreregistrationSerializer(serializers.Serializer):  # type: ignore[type-arg]
    """The report against the study's preregistration (``analysis.preregistered``)."""

    design_hash = serializers.CharField()
    analyses = _AnalysisStatusSerializer(many=True)
    deviations = serializers.ListField(child=serializers.CharField())

    class Meta:
        ref_name = "PreregistrationCheck"


class _ContingencySerializer(serializers.Serializer):  # type: ignore[type-arg]
    """A chi-square test of independence (``stats.ContingencyTest``) with its table."""

    question_key = serializers.CharField(allow_null=True)
    statistic = serializers.FloatField(allow_null=True)
    df = serializers.IntegerField()
    p_value = serializers.FloatField(allow_null=True)
    n = serializers.IntegerField()
    min_expected = serializers.FloatField(allow_null=True)
    cramers_v = serializers.FloatField(allow_null=True)
    correction = serializers.BooleanField()
    rows = serializers.ListField(child=serializers.CharField())
    columns = serializers.ListField(child=serializers.CharField())
    observed = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()))

    class Meta:
        ref_name = "ContingencyTest"


def _contingency(test: stats.ContingencyTest, key: str | None = None) -> dict[str, Any]:
    def finite(value: float) -> float | None:
        return value if math.isfinite(value) else None

    return {
        **asdict(test),
        "question_key": key,
        "statistic": finite(test.statistic),
        "p_value": finite(test.p_value),
        "min_expected": finite(test.min_expected),
        "cramers_v": finite(test.cramers_v),
    }


class StudyResultsApi(StudyAPIView):
    """The computed results (``analysis.services.study_report``): exclusion ledger,
    credibility rates per condition, comparisons with the reference, the logistic
    regression (null when it cannot be fitted; see ``notes``), power, Likert means, and -
    when detector scores are stored for the study's articles - the ROC AUCs of
    participants and of each score (``detectors``) and the articles where they disagree
    most (``disagreements``); both null when nothing was scored. With three or more
    conditions, the omnibus test of equal credible shares (``omnibus``) and every pair
    compared (``pairwise``) with the study's preregistered ``multiple_comparisons``
    correction; the r x c test of each multi-option question by condition
    (``answer_tests``); detection accuracy against 50% (``detection_binomial``, null
    without a detection question). ``people_vs_detector``: the best detector score against
    the participants on the same articles (DeLong's paired test) and ``best_disagreements``,
    the articles the two disagree most about; null without scores or a yes/no question.
    ``preregistration``: which analyses were planned and which exploratory, and every
    departure from the plan (null for a draft).
    When the study records the published result it
    replicates, ``replication`` has per condition the original estimate, this study's
    and the small-telescopes and TOST equivalence tests (``replication_citation`` is the
    researcher's free text); null otherwise.
    Non-finite numbers (NaN, an infinite odds ratio) are null."""

    class OutputSerializer(serializers.Serializer):  # type: ignore[type-arg]
        study_slug = serializers.CharField()
        study_title = serializers.CharField()
        analysed = serializers.IntegerField()
        binary_question = serializers.CharField(allow_null=True)
        reference = serializers.CharField(allow_null=True)
        ledger = _LedgerStepSerializer(many=True)
        proportions = _table_serializer("Proportion", stats.PROPORTION_COLUMNS)(many=True)
        comparisons = _table_serializer("Comparison", stats.COMPARISON_COLUMNS)(many=True)
        likert = _table_serializer("LikertMean", stats.LIKERT_COLUMNS)(many=True)
        power = _table_serializer("Power", POWER_COLUMNS)(many=True)
        regression = _RegressionSerializer(allow_null=True)
        detectors = _table_serializer("DetectorSeparation", DETECTOR_COLUMNS)(
            many=True, allow_null=True
        )
        disagreements = _table_serializer("Disagreement", DISAGREEMENT_COLUMNS)(
            many=True, allow_null=True
        )
        multiple_comparisons = serializers.CharField()
        omnibus = _ContingencySerializer(allow_null=True)
        pairwise = _table_serializer("PairwiseComparison", stats.PAIRWISE_COLUMNS)(many=True)
        answer_tests = _ContingencySerializer(many=True)
        detection_binomial = _table_serializer("DetectionBinomial", DETECTION_BINOMIAL_COLUMNS)(
            many=True, allow_null=True
        )
        people_vs_detector = _table_serializer("PeopleVersusDetector", PEOPLE_VS_DETECTOR_COLUMNS)(
            many=True, allow_null=True
        )
        best_disagreements = _table_serializer("BestDisagreement", BEST_DISAGREEMENT_COLUMNS)(
            many=True, allow_null=True
        )
        preregistration = _PreregistrationSerializer(allow_null=True)
        replication = _table_serializer("Replication", REPLICATION_COLUMNS)(
            many=True, allow_null=True
        )
        replication_citation = serializers.CharField(allow_blank=True)
        notes = serializers.ListField(child=serializers.CharField())

        class Meta:
            ref_name = "StudyResults"

    @extend_schema(responses=documented(OutputSerializer))
    def get(self, request: Request, slug: str) -> ApiResponse:
        study = self.get_study(slug)
        report = study_report(study=study)
        fit = report.regression
        data = {
            "study_slug": report.study_slug,
            "study_title": report.study_title,
            "analysed": report.analysed,
            "binary_question": report.binary_question,
            "reference": report.reference,
            "ledger": [asdict(step) for step in report.ledger],
            "proportions": frame_records(report.proportions, stats.PROPORTION_COLUMNS),
            "comparisons": frame_records(report.comparisons, stats.COMPARISON_COLUMNS),
            "likert": frame_records(report.likert, stats.LIKERT_COLUMNS),
            "power": frame_records(report.power, POWER_COLUMNS),
            "regression": None
            if fit is None
            else {
                "reference": fit.reference,
                "n_obs": fit.n_obs,
                "n_clusters": fit.n_clusters,
                "cov_type": fit.cov_type,
                "confidence": fit.confidence,
                "table": frame_records(fit.table, stats.LOGISTIC_COLUMNS),
            },
            "detectors": None
            if report.detectors is None
            else frame_records(report.detectors, DETECTOR_COLUMNS),
            "disagreements": None
            if report.disagreements is None
            else frame_records(report.disagreements, DISAGREEMENT_COLUMNS),
            "multiple_comparisons": report.multiple_comparisons,
            "omnibus": None if report.omnibus is None else _contingency(report.omnibus),
            "pairwise": frame_records(report.pairwise, stats.PAIRWISE_COLUMNS),
            "answer_tests": [_contingency(test, key) for key, test in report.answer_tests],
            "detection_binomial": None
            if report.detection_binomial is None
            else frame_records(report.detection_binomial, DETECTION_BINOMIAL_COLUMNS),
            "people_vs_detector": None
            if report.people_vs_detector is None
            else frame_records(report.people_vs_detector, PEOPLE_VS_DETECTOR_COLUMNS),
            "best_disagreements": None
            if report.best_disagreements is None
            else frame_records(report.best_disagreements, BEST_DISAGREEMENT_COLUMNS),
            "preregistration": None
            if (check := report.preregistration) is None
            else {
                "design_hash": check.design_hash,
                "analyses": [{"analysis": a, "status": s} for a, s in check.analyses],
                "deviations": check.deviations,
            },
            "replication": None
            if report.replication is None
            else frame_records(report.replication, REPLICATION_COLUMNS),
            "replication_citation": report.replication_citation,
            "notes": list(report.notes),
        }
        return ApiResponse(self.OutputSerializer(data).data)


__all__ = [
    "ArticleManifestApi",
    "ConditionListApi",
    "ParticipantListApi",
    "ResponseListApi",
    "StudyDetailApi",
    "StudyListApi",
    "StudyResultsApi",
]
