"""The public pages: the study link's consent page (who may enter, and enrolment on
consent), the researchers' preview link, and the site's about page."""

from __future__ import annotations

from collections.abc import Mapping

from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_GET, require_http_methods

from surveys import fraud
from surveys.models import WIKINEWS_ATTRIBUTION, Study
from surveys.privacy import network_hash
from surveys.selectors import study_role_of
from surveys.services import (
    PanelIdRequiredError,
    PanelIds,
    StudyClosedError,
    StudyFullError,
    participant_enroll,
    participant_find,
    study_is_full,
    study_validate_design,
)
from surveys.views.common import (
    PANEL_FIELDS,
    participant_input,
    rate_limited,
    remember,
    remembered,
    render_page,
    too_many,
)


@participant_input
@require_GET
def about(request: HttpRequest) -> HttpResponse:
    return render_page(request, "about.html", {"attribution": WIKINEWS_ATTRIBUTION})


def _panel_or_400(
    request: HttpRequest, source: Mapping[str, str]
) -> tuple[PanelIds, HttpResponse | None]:
    try:
        return PanelIds.from_query(source), None
    except ValidationError as error:
        page = render_page(request, "bad_input.html", {"message": error.messages[0]}, status=400)
        return PanelIds(), page


@participant_input
@require_http_methods(["GET", "POST"])
def start(request: HttpRequest, slug: str) -> HttpResponse:
    """Consent page. A GET never writes (link scanners open study links); consent is a
    POST. Someone who already has a participation is sent back to where they are.

    A draft or closed study says it is not open, without its title: the page is
    public. Consents are rate-limited per client network and study."""
    study = next(iter(Study.objects.filter(slug=slug).order_by()[:1]), None)
    if study is None:
        return render_page(request, "study_not_found.html", {"slug": slug}, status=404)
    source = request.POST if request.method == "POST" else request.GET
    panel, bad = _panel_or_400(request, source)
    if bad is not None:
        return bad
    back = _back_to_participation(request, study, panel)
    if back is not None:
        return back
    # Checked before consent too, so nobody agrees to a study that cannot take them.
    reason = _cannot_take(study, panel)
    if reason is not None:
        return _refusal(request, study, reason)
    hidden = {name: source[name] for name in PANEL_FIELDS if source.get(name)}
    context: dict[str, object] = {"study": study, "hidden": hidden, "error": ""}
    if request.method == "GET":
        return render_page(request, "start.html", context)
    client = network_hash(request)
    if rate_limited(
        request,
        group="surveys.entry",
        rate_setting="CREDENCE_ENTRY_RATE",
        key=f"{client}:{study.pk}",
    ):
        return too_many(request)
    if request.POST.get("consent") != "yes":
        context["error"] = "Please tick the box to agree to take part, or close this page."
        return render_page(request, "start.html", context)
    try:
        participant = participant_enroll(
            study=study,
            panel=panel,
            user_agent=request.headers.get("user-agent", ""),
            network_hash=client,
        )
    except (StudyClosedError, StudyFullError, PanelIdRequiredError) as error:
        return _refusal(request, study, error)
    remember(request, participant)
    browser_id = fraud.enrolment_signals_record(participant=participant, request=request)
    response = redirect("surveys:resume", token=participant.token)
    fraud.browser_cookie_set(response=response, request=request, browser_id=browser_id)
    return response


def _back_to_participation(
    request: HttpRequest, study: Study, panel: PanelIds
) -> HttpResponse | None:
    """To the participation this panel id, or else this browser, already has, if any.
    Resuming is allowed after the study closes, so nobody loses a started session."""
    existing = participant_find(study=study, panel=panel) if panel.pid else None
    if existing is None and not panel.pid:
        existing = remembered(request, study)
    if existing is None:
        return None
    if panel.pid:
        # Returning through the panel's link, maybe in another browser: this one
        # remembers it too, so the bare study link later leads back to it.
        remember(request, existing)
    return redirect("surveys:resume", token=existing.token)


_Refusal = StudyClosedError | StudyFullError | PanelIdRequiredError


def _cannot_take(study: Study, panel: PanelIds) -> _Refusal | None:
    """Why the study cannot enrol this person now, as enrolment itself would say."""
    if not study.accepts_participants:
        return StudyClosedError()
    if study.require_panel_id and not panel.pid:
        return PanelIdRequiredError()
    if study_is_full(study=study):
        return StudyFullError()
    return None


def _refusal(
    request: HttpRequest,
    study: Study,
    reason: _Refusal,
) -> HttpResponse:
    """The page that says why the study cannot take this person now."""
    if isinstance(reason, StudyFullError):
        return render_page(request, "study_closed.html", {"study": study, "full": True}, status=503)
    if isinstance(reason, PanelIdRequiredError):
        return render_page(request, "panel_id_required.html", {}, status=403)
    return render_page(request, "study_closed.html", {"study": study}, status=410)


@participant_input
@staff_member_required
@require_http_methods(["GET", "POST"])
def preview(request: HttpRequest, slug: str) -> HttpResponse:
    """Enrol a flagged test participant (any status but closed) and enter the flow.
    A GET only shows a button (a link opened by a mail scanner or prefetched by a
    browser must not enrol anyone); the POST enrols. Panel parameters are honoured, so
    the panel round trip can be tried out too."""
    study = Study.objects.filter(slug=slug).first()
    # Another team's study is as good as absent: previews show its design.
    if study is None or study_role_of(user=request.user, study=study) is None:
        return render_page(request, "study_not_found.html", {"slug": slug}, status=404)
    if study.status == Study.Status.CLOSED:
        return render_page(request, "study_closed.html", {"study": study}, status=410)
    try:
        study_validate_design(study=study)
    except ValidationError as error:
        return render_page(
            request,
            "preview_problems.html",
            {"study": study, "problems": error.messages},
            status=409,
        )
    source = request.POST if request.method == "POST" else request.GET
    panel, bad = _panel_or_400(request, source)
    if bad is not None:
        return bad
    if request.method == "GET":
        hidden = {name: source[name] for name in PANEL_FIELDS if source.get(name)}
        return render_page(request, "preview_confirm.html", {"study": study, "hidden": hidden})
    existing = participant_find(study=study, panel=panel)
    if existing is not None and not existing.is_test:
        # Never let a preview take over a real participation.
        return render_page(
            request,
            "preview_problems.html",
            {"study": study, "problems": ["That panel id belongs to a real participant."]},
            status=409,
        )
    try:
        participant = participant_enroll(
            study=study,
            panel=panel,
            is_test=True,
            user_agent=request.headers.get("user-agent", ""),
        )
    except StudyFullError as error:
        return render_page(
            request, "preview_problems.html", {"study": study, "problems": [str(error)]}, status=409
        )
    return redirect("surveys:resume", token=participant.token)
