"""What every endpoint of the analysts' API (``analysis.apis``) shares: who may read a
study (:func:`study_visible_to`, through :class:`CanViewStudyData`), CSV rendering and
pages, the per-study base view, the error answers the schema documents, and tables as
JSON-safe rows."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import BasePermission
from rest_framework.renderers import BaseRenderer, BrowsableAPIRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response as ApiResponse
from rest_framework.views import APIView

from analysis.spreadsheet import cell_for_spreadsheet
from surveys.models import Study
from surveys.selectors import studies_visible_to, study_role_of

# ---------------------------------------------------------------------------------------
# Who may see what


def study_visible_to(*, user: AbstractBaseUser | AnonymousUser, study: Study) -> bool:
    """Whether ``user`` may read ``study``'s data through the API: superusers, and staff
    members of the study's research team (researchers and analysts alike). The rule is
    ``surveys.selectors.study_role_of``, shared with the admin and the results pages."""
    return study_role_of(user=user, study=study) is not None


class CanViewStudyData(BasePermission):
    """Signed-in users, and per study only those :func:`study_visible_to` allows."""

    message = "You may not read this study's data."

    def has_permission(self, request: Request, view: APIView) -> bool:
        return bool(request.user and request.user.is_authenticated)

    def has_object_permission(self, request: Request, view: APIView, study: Study) -> bool:
        return study_visible_to(user=request.user, study=study)


# ---------------------------------------------------------------------------------------
# Rendering and paging


class CSVRenderer(BaseRenderer):
    """Rows as CSV: a paginated body's ``results``, a list, or one object. Columns come
    from the view's ``csv_columns`` (so an empty result still has its header), else from
    the first row. Nested values are written as JSON, missing ones as empty cells."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        context = renderer_context or {}
        if isinstance(data, dict) and isinstance(data.get("results"), list):
            rows = data["results"]
        elif isinstance(data, list):
            rows = data
        else:
            rows = [data] if data is not None else []
        response = context.get("response")
        failed = response is not None and response.status_code >= 400
        columns = None if failed else getattr(context.get("view"), "csv_columns", None)
        if columns is None:
            columns = list(rows[0]) if rows else []
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        for row in rows:
            writer.writerow([_csv_cell(row.get(column)) for column in columns])
        return buffer.getvalue().encode(self.charset)


def _csv_cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, sort_keys=True)
    # Panel ids, answers and names are typed by people: no formulas in a spreadsheet.
    return cell_for_spreadsheet(value)


TABLE_RENDERERS = [JSONRenderer, BrowsableAPIRenderer, CSVRenderer]


class RowsPagination(PageNumberPagination):
    """Page-number pages of 500 rows by default, at most 5000 (``?page_size=``)."""

    page_size = 500
    page_size_query_param = "page_size"
    max_page_size = 5000

    def get_paginated_response(self, data: Any) -> ApiResponse:
        response = super().get_paginated_response(data)
        links = [
            f'<{url}>; rel="{rel}"'
            for rel, url in (("next", self.get_next_link()), ("prev", self.get_previous_link()))
            if url
        ]
        if links:
            response["Link"] = ", ".join(links)
        return response


def api_export_name(request: Request, endpoint: str) -> str:
    """How an API read of participant data is named in the audit log."""
    fmt = getattr(request.accepted_renderer, "format", "json")
    return f"API {endpoint} ({fmt}, page {request.query_params.get('page', '1')[:10]})"


class StudyAPIView(APIView):
    """Base for the per-study endpoints: read-only, the study looked up by slug (404 when
    unknown) and checked against :class:`CanViewStudyData` (403 for outsiders)."""

    permission_classes = [CanViewStudyData]
    http_method_names = ["get", "head", "options"]

    def get_study(self, slug: str) -> Study:
        # Another team's study is "not found", as if it did not exist: its slug is not
        # confirmed to outsiders. Signed-in non-staff users still get 403 from the check.
        study = get_object_or_404(
            studies_visible_to(user=self.request.user)
            if getattr(self.request.user, "is_staff", False)
            else Study.objects.all(),
            slug=slug,
        )
        self.check_object_permissions(self.request, study)
        return study


# ---------------------------------------------------------------------------------------
# What the schema documents besides success (the OpenAPI fuzzer holds every answer to it)


class _ErrorSerializer(serializers.Serializer):  # type: ignore[type-arg]
    detail = serializers.CharField()

    class Meta:
        ref_name = "Error"


_INVALID = OpenApiResponse(
    response=OpenApiTypes.OBJECT,
    description="A query parameter is invalid: each offending parameter -> its messages.",
)


def documented(ok: Any, *, study: bool = True, filters: bool = False) -> dict[int, Any]:
    """The responses of one operation: ``ok`` with 200, and the errors it can answer:
    401 without credentials, 403 for a caller who may not read, 404 for an unknown study,
    an unknown ``format`` or a page past the end, 400 for an invalid filter, 429 once the
    caller's rate (the DRF throttles in settings) is spent."""
    responses: dict[int, Any] = {
        200: ok,
        401: OpenApiResponse(_ErrorSerializer, description="No or invalid credentials."),
        403: OpenApiResponse(_ErrorSerializer, description="Not allowed to read this."),
        404: OpenApiResponse(
            _ErrorSerializer,
            description=(
                "No such study visible to the caller, no such page, or an unknown format."
                if study
                else "An unknown format."
            ),
        ),
        429: OpenApiResponse(
            _ErrorSerializer, description="Too many requests: retry after Retry-After seconds."
        ),
    }
    if filters:
        responses[400] = _INVALID
    return dict(sorted(responses.items()))


# ---------------------------------------------------------------------------------------
# Tables as rows


def frame_records(frame: pd.DataFrame, columns: Sequence[str]) -> list[dict[str, Any]]:
    """DataFrame rows as plain Python dicts; NaN, NA and infinities become None (strict
    JSON has no NaN, and an infinite odds ratio is reported as "not estimable")."""
    records = []
    for row in frame.reindex(columns=list(columns)).itertuples(index=False, name=None):
        record = {}
        for column, value in zip(columns, row, strict=True):
            if isinstance(value, np.generic):
                value = value.item()
            if (
                value is pd.NA
                or value is pd.NaT
                or (isinstance(value, float) and not math.isfinite(value))
            ):
                value = None
            record[column] = value
        records.append(record)
    return records
