"""Results page and CSV download for staff. Thin: the numbers come from services."""

from __future__ import annotations

from django.contrib.admin.views.decorators import staff_member_required
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render

from analysis import presentation
from analysis.services import responses_csv_chunks, study_report
from surveys.models import WIKINEWS_ATTRIBUTION, Study


@staff_member_required
def results(request: HttpRequest, slug: str) -> HttpResponse:
    study = get_object_or_404(Study, slug=slug)
    report = study_report(study=study)
    return render(
        request,
        "analysis/results.html",
        {
            "study": study,
            "report": report,
            "proportions": presentation.proportion_rows(report),
            "comparisons": presentation.comparison_rows(report),
            "likert": presentation.likert_rows(report),
            "regression": presentation.regression_rows(report),
            "power": presentation.power_rows(report),
            "attribution": WIKINEWS_ATTRIBUTION,
        },
    )


@staff_member_required
def export_csv(request: HttpRequest, slug: str) -> StreamingHttpResponse:
    study = get_object_or_404(Study, slug=slug)
    response = StreamingHttpResponse(
        responses_csv_chunks(study=study), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{study.slug}-responses.csv"'
    return response
