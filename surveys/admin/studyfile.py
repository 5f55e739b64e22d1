"""A study as a file in the admin: export from the study's page or the list's action,
and import with a dry run that shows what would be created before anything is.

Mixed into ``StudyAdmin`` (``surveys.admin.studies``), so it sees exactly the studies
that admin shows: export is for whoever may view the study (analysts too: a design is
not participant data), import for researchers, into one of their teams.
"""

from __future__ import annotations

import secrets
from typing import Any

from django import forms
from django.contrib import messages
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.views.decorators.http import require_http_methods

from surveys.admin.teams import MAX_IMPORT_BYTES, may_edit_some_study
from surveys.importers import decode_upload
from surveys.models import Study, Team
from surveys.selectors import studies_visible_to, teams_for_new_study
from surveys.studyfile import StudyFileResult, study_file_export, study_file_import

IMPORT_TEMPLATE = "admin/surveys/study/studyfile_import.html"
# How long a dry run waits for its confirmation.
PENDING_SECONDS = 3600


def study_file_response(study: Study) -> HttpResponse:
    """The study file as a download named after the study."""
    response = HttpResponse(
        study_file_export(study=study), content_type="application/yaml; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="study-{study.slug}.yaml"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


class StudyFileUploadForm(forms.Form):
    file = forms.FileField(help_text="A study file (.yaml) written by Export as file.")
    team = forms.ModelChoiceField(queryset=Team.objects.none(), required=False)
    slug = forms.SlugField(
        required=False,
        max_length=80,
        help_text="Import under this slug instead of the file's (e.g. when it is taken).",
    )

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        team = self.fields["team"]
        assert isinstance(team, forms.ModelChoiceField)
        team.queryset = teams_for_new_study(user=user)
        # Superusers may import a study without a team (seen by superusers only).
        team.required = not user.is_superuser
        team.help_text = "The study arrives as a draft of this team."


class StudyFileConfirmForm(forms.Form):
    """The confirm step: which dry run to carry out. The file's text, team and slug wait
    in the cache under a random token and the user's id (a study file can be larger than
    Django lets a form field be, and what is imported is exactly what the dry run
    showed); the file is checked again in full when imported, and the team again."""

    token = forms.CharField(widget=forms.HiddenInput, max_length=64)


class StudyFileAdminMixin:
    """Export and import of study files for ``StudyAdmin``."""

    def get_urls(self) -> list[URLPattern]:
        site = self.admin_site  # type: ignore[attr-defined]
        custom = [
            path(
                "import-file/",
                site.admin_view(require_http_methods(["GET", "POST"])(self.study_file_import_view)),
                name="surveys_study_file_import",
            ),
            path(
                "<path:object_id>/export-file/",
                site.admin_view(require_http_methods(["GET"])(self.study_file_export_view)),
                name="surveys_study_file_export",
            ),
        ]
        inherited: list[URLPattern] = super().get_urls()  # type: ignore[misc]
        return custom + inherited

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions: dict[str, Any] = super().get_actions(request)  # type: ignore[misc]
        if self.has_view_permission(request):  # type: ignore[attr-defined]
            actions["export_study_file"] = (
                StudyFileAdminMixin.export_study_file,
                "export_study_file",
                "Export as a study file (one study)",
            )
        return actions

    def export_study_file(
        self, request: HttpRequest, queryset: QuerySet[Study]
    ) -> HttpResponse | None:
        studies = list(queryset[:2])
        if len(studies) != 1:
            self.message_user(  # type: ignore[attr-defined]
                request, "Select one study to export as a file.", messages.ERROR
            )
            return None
        return study_file_response(studies[0])

    def study_file_export_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        if not str(object_id).isdigit():
            raise Http404("No such study.")
        # Another team's study is plainly not found, as on its change page.
        study = get_object_or_404(studies_visible_to(user=request.user), pk=object_id)
        return study_file_response(study)

    def study_file_import_view(self, request: HttpRequest) -> HttpResponse:
        """Upload -> dry run (counts and errors) -> confirm -> import."""
        if not may_edit_some_study(request):
            raise PermissionDenied
        user = request.user
        result: StudyFileResult | None = None
        confirm: StudyFileConfirmForm | None = None
        upload = StudyFileUploadForm(user=user)
        if request.method == "POST" and "confirm" in request.POST:
            confirm = StudyFileConfirmForm(request.POST)
            key = _pending_key(user, confirm.data.get("token", ""))
            pending = cache.get(key) if confirm.is_valid() else None
            if pending is None:
                self.message_user(  # type: ignore[attr-defined]
                    request, "That dry run has expired: upload the file again.", messages.ERROR
                )
                return redirect("admin:surveys_study_file_import")
            team = None
            if pending["team"] is not None:
                # Still a team of theirs (a superuser may import without one).
                team = teams_for_new_study(user=user).filter(pk=pending["team"]).first()
                if team is None:
                    raise PermissionDenied("Choose one of the teams you are a researcher of.")
            elif not user.is_superuser:
                raise PermissionDenied("Choose one of the teams you are a researcher of.")
            result = study_file_import(text=pending["text"], team=team, slug=pending["slug"])
            if result.ok and result.study is not None:
                cache.delete(key)
                self.log_addition(  # type: ignore[attr-defined]
                    request, result.study, "Imported from a study file."
                )
                self.message_user(  # type: ignore[attr-defined]
                    request, f"Imported {result.summary()}.", messages.SUCCESS
                )
                return redirect("admin:surveys_study_change", result.study.pk)
            confirm = None
        elif request.method == "POST":
            upload = StudyFileUploadForm(request.POST, request.FILES, user=user)
            if upload.is_valid():
                result, confirm = self._dry_run(upload, user)
        return self._import_page(request, upload, result, confirm)

    def _import_page(
        self,
        request: HttpRequest,
        upload: StudyFileUploadForm,
        result: StudyFileResult | None,
        confirm: StudyFileConfirmForm | None,
    ) -> HttpResponse:
        context = {
            **self.admin_site.each_context(request),  # type: ignore[attr-defined]
            "title": "Import a study file",
            "opts": Study._meta,
            "form": upload,
            "result": result,
            "confirm": confirm,
            "changelist_url": reverse("admin:surveys_study_changelist"),
        }
        return TemplateResponse(request, IMPORT_TEMPLATE, context)

    @staticmethod
    def _dry_run(
        upload: StudyFileUploadForm, user: Any
    ) -> tuple[StudyFileResult | None, StudyFileConfirmForm | None]:
        file = upload.cleaned_data["file"]
        if file.size > MAX_IMPORT_BYTES:
            upload.add_error("file", f"The file is over {MAX_IMPORT_BYTES // 2**20} MB.")
            return None, None
        try:
            text = decode_upload(file.read())
        except ValueError as error:
            upload.add_error("file", str(error))
            return None, None
        team, slug = upload.cleaned_data["team"], upload.cleaned_data["slug"] or None
        result = study_file_import(text=text, team=team, slug=slug, dry_run=True)
        if not result.ok:
            return result, None
        token = secrets.token_urlsafe(24)
        pending = {"text": text, "team": team.pk if team else None, "slug": slug}
        cache.set(_pending_key(user, token), pending, PENDING_SECONDS)
        confirm = StudyFileConfirmForm(initial={"token": token})
        return result, confirm


def _pending_key(user: Any, token: str) -> str:
    # The user's id in the key: a token seen by someone else confirms nothing for them.
    return f"studyfile-import:{user.pk}:{token}"
