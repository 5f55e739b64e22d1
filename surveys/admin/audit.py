"""The audit trail (surveys.audit): read-only, as django-auditlog's own admin is, and
scoped to the team whose object an entry is about."""

from __future__ import annotations

from typing import Any

from auditlog.admin import LogEntryAdmin
from auditlog.models import LogEntry
from django.contrib import admin
from django.db.models import QuerySet
from django.http import Http404, HttpRequest

from surveys.selectors import teams_for_new_study

if admin.site.is_registered(LogEntry):
    admin.site.unregister(LogEntry)


@admin.register(LogEntry)
class TeamLogEntryAdmin(LogEntryAdmin):  # type: ignore[misc]
    """Superusers see every entry; a team's researchers see the entries about their
    team's objects (tagged with the team by ``surveys.audit``) and exports of its
    studies. Nobody adds, changes or deletes an entry here."""

    def _team_ids(self, request: HttpRequest) -> list[int]:
        return list(teams_for_new_study(user=request.user).values_list("pk", flat=True))

    def get_queryset(self, request: HttpRequest) -> QuerySet[LogEntry]:
        queryset: QuerySet[LogEntry] = super().get_queryset(request)
        if request.user.is_active and request.user.is_superuser:
            return queryset
        return queryset.filter(additional_data__team_id__in=self._team_ids(request))

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            raise Http404("No such entry, or not one of your team's.")
        return obj

    def has_module_permission(self, request: HttpRequest) -> bool:
        user = request.user
        return bool(user.is_active and (user.is_superuser or self._team_ids(request)))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return self.has_module_permission(request)
        return self.get_queryset(request).filter(pk=obj.pk).exists()
