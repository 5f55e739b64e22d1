"""Results page and CSV download for staff. Thin: the numbers come from services.

Each view finds its study among ``surveys.selectors.studies_visible_to`` the user: another
team's study answers 404, exactly like a study that does not exist.
"""

from __future__ import annotations

import tempfile

from django.contrib.admin.views.decorators import staff_member_required
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, render

from analysis import exports, plots, presentation
from analysis.preregistration import preregistration_html, preregistration_markdown
from analysis.replication import replication_archive_write
from analysis.report_cache import report_for_figures, report_share
from analysis.services import responses_csv_chunks, study_report
from surveys.audit import audit_export
from surveys.models import WIKINEWS_ATTRIBUTION, Study
from surveys.selectors import studies_visible_to


def _visible_study(request: HttpRequest, slug: str) -> Study:
    return get_object_or_404(studies_visible_to(user=request.user), slug=slug)


@staff_member_required
def results(request: HttpRequest, slug: str) -> HttpResponse:
    study = _visible_study(request, slug)
    report = study_report(study=study)
    return render(
        request,
        "analysis/results.html",
        {
            "study": study,
            **presentation.table_context(report),
            "plots": list(plots.PLOT_TITLES.items()),
            # The figures' URLs carry it: they draw this report instead of computing four.
            "report_token": report_share(study=study, report=report),
            "attribution": WIKINEWS_ATTRIBUTION,
        },
    )


@staff_member_required
def plot(request: HttpRequest, slug: str, name: str) -> HttpResponse:
    """One figure of the study report as SVG, or PNG with ``?format=png``."""
    if name not in plots.PLOTS:
        raise Http404(f"No plot named {name!r}.")
    fmt = request.GET.get("format", "svg")
    if fmt not in ("svg", "png"):
        return HttpResponse(
            "format must be svg or png", status=400, content_type="text/plain; charset=utf-8"
        )
    study = _visible_study(request, slug)
    report = report_for_figures(study=study, token=request.GET.get("report"))
    body = plots.plot_bytes(report, name, fmt)
    response = HttpResponse(body, content_type="image/svg+xml" if fmt == "svg" else "image/png")
    if "download" in request.GET:
        response["Content-Disposition"] = f'attachment; filename="{study.slug}-{name}.{fmt}"'
    return response


@staff_member_required
def preregistration(request: HttpRequest, slug: str, fmt: str) -> HttpResponse:
    """The study's preregistration as Markdown (``md``) or a self-contained web page
    (``html``), written from its frozen design; 409 before the design is frozen."""
    if fmt not in ("md", "html"):
        raise Http404("The preregistration is Markdown (.md) or a web page (.html).")
    study = _visible_study(request, slug)
    try:
        if fmt == "md":
            body = preregistration_markdown(study=study)
            response = HttpResponse(body, content_type="text/markdown; charset=utf-8")
        else:
            response = HttpResponse(preregistration_html(study=study))
    except ValueError as error:
        return HttpResponse(str(error), status=409, content_type="text/plain; charset=utf-8")
    name = f"{study.slug}-preregistration-{study.design_hash[:12]}.{fmt}"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@staff_member_required
def export_csv(request: HttpRequest, slug: str) -> StreamingHttpResponse:
    study = _visible_study(request, slug)
    audit_export(user=request.user, study=study, what="responses CSV (results page)")
    response = StreamingHttpResponse(
        responses_csv_chunks(study=study), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{study.slug}-responses.csv"'
    return response


@staff_member_required
def export_wide_csv(request: HttpRequest, slug: str) -> StreamingHttpResponse:
    """One row per participant, streamed a chunk of participants at a time."""
    study = _visible_study(request, slug)
    audit_export(user=request.user, study=study, what="participants CSV (results page)")
    response = StreamingHttpResponse(
        exports.wide_csv_chunks(study=study), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="{study.slug}-participants.csv"'
    return response


@staff_member_required
def replication_archive(request: HttpRequest, slug: str) -> FileResponse:
    """The study's replication archive (``analysis.replication``) as a zip download."""
    study = _visible_study(request, slug)
    audit_export(user=request.user, study=study, what="replication archive (results page)")
    # A temporary file, not memory: the archive holds every rating. Not a with-block:
    # FileResponse closes the file once sent, which deletes it.
    target = tempfile.TemporaryFile()  # noqa: SIM115
    # The page-load limit on the mixed model, as the results page itself (a request must
    # not fit a model for minutes); the command uses the offline one.
    replication_archive_write(study=study, target=target, mixed_max_ratings=None)
    target.seek(0)
    return FileResponse(
        target,
        as_attachment=True,
        filename=f"study-{study.slug}.zip",
        content_type="application/zip",
    )
