"""Research teams: who sees and changes which study, article and generation run (the
rules are in the package docstring), and the admin of teams and their members."""

from __future__ import annotations

from typing import Any, cast

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import Http404, HttpRequest

from surveys.models import Study, Team, TeamMembership
from surveys.selectors import (
    pool_editable_by,
    pool_visible_to,
    role_can_edit,
    studies_visible_to,
    study_role_of,
    teams_for_new_study,
    user_roles,
)

LOCKED_STATUSES = (Study.Status.LIVE, Study.Status.CLOSED)
MAX_IMPORT_BYTES = 50 * 1024 * 1024


def _study_of(obj: Any, study_path: str) -> Study:
    for name in filter(None, study_path.split("__")):
        obj = getattr(obj, name)
    return cast(Study, obj)


def may_edit_some_study(request: HttpRequest) -> bool:
    return any(role_can_edit(role) for role in user_roles(user=request.user))


class TeamScopedView:
    """For the admin of a study-related model: only the studies the user may see, and
    viewing by team role instead of Django's model permissions. ``study_path`` leads from
    the model to its study ("" for Study itself)."""

    study_path = "study"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset: QuerySet[Any] = super().get_queryset(request)  # type: ignore[misc]
        lookup = f"{self.study_path}__in" if self.study_path else "pk__in"
        return queryset.filter(**{lookup: studies_visible_to(user=request.user).values("pk")})

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        # Django redirects to the index when the object is outside get_queryset; another
        # team's objects are plainly not found.
        obj = super().get_object(request, object_id, from_field)  # type: ignore[misc]
        if obj is None:
            raise Http404("No such object, or not one of your team's.")
        return obj

    def _role(self, request: HttpRequest, obj: Any) -> str | None:
        return study_role_of(user=request.user, study=_study_of(obj, self.study_path))

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(user_roles(user=request.user))

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is None:
            return bool(user_roles(user=request.user))
        return self._role(request, obj) is not None


class TeamScopedAdmin(TeamScopedView):
    """A study design object: researchers (and superusers) change it, analysts only see it."""

    def _may_edit(self, request: HttpRequest, obj: Any) -> bool:
        if obj is None:
            return may_edit_some_study(request)
        return role_can_edit(self._role(request, obj))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return may_edit_some_study(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_edit(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may_edit(request, obj)


class TeamPoolAdmin:
    """For the admin of a team-owned pool (articles, generation runs and their samples):
    see ``surveys.selectors.pool_visible_to``. ``team_path`` leads from the model to the
    owning team ("run__team" for samples); Django's model permissions of the model
    govern only the shared objects (no team)."""

    team_path = "team"

    def _perm(self, action: str) -> str:
        opts = self.model._meta  # type: ignore[attr-defined]
        return f"{opts.app_label}.{action}_{opts.model_name}"

    def _team_id(self, obj: Any) -> int | None:
        *hops, _ = self.team_path.split("__")
        for name in hops:
            obj = getattr(obj, name)
        return cast("int | None", obj.team_id)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset: QuerySet[Any] = super().get_queryset(request)  # type: ignore[misc]
        return pool_visible_to(
            user=request.user,
            queryset=queryset,
            view_perm=self._perm("view"),
            team_path=self.team_path,
        )

    def get_object(self, request: HttpRequest, object_id: str, from_field: Any = None) -> Any:
        obj = super().get_object(request, object_id, from_field)  # type: ignore[misc]
        if obj is None:
            raise Http404("No such object, or not one of your team's.")
        return obj

    def _visible(self, request: HttpRequest, obj: Any) -> bool:
        return self.get_queryset(request).filter(pk=obj.pk).exists()

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(user_roles(user=request.user)) or bool(
            super().has_module_permission(request)  # type: ignore[misc]
        )

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        if obj is not None:
            return self._visible(request, obj)
        return bool(user_roles(user=request.user)) or bool(
            super().has_view_permission(request)  # type: ignore[misc]
        )

    def _may(self, request: HttpRequest, obj: Any, action: str) -> bool:
        if obj is None:
            return may_edit_some_study(request) or request.user.has_perm(self._perm(action))
        return self._visible(request, obj) and pool_editable_by(
            user=request.user, team_id=self._team_id(obj), perm=self._perm(action)
        )

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return may_edit_some_study(request) or request.user.has_perm(self._perm("add"))

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may(request, obj, "change")

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self._may(request, obj, "delete")

    def formfield_for_foreignkey(self, db_field: Any, request: HttpRequest, **kwargs: Any) -> Any:
        if db_field.name == "team":
            kwargs["queryset"] = teams_for_new_study(user=request.user)
            if not request.user.is_superuser and not request.user.has_perm(self._perm("add")):
                kwargs["required"] = True  # the shared pool is not theirs to add to
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        # Below the form's choices: an object is only put in one of your own teams, or
        # in the shared pool by those who curate it.
        perm = self._perm("change" if change else "add")
        if (not change or "team" in form.changed_data) and not pool_editable_by(
            user=request.user, team_id=obj.team_id, perm=perm
        ):
            raise PermissionDenied("Choose one of the teams you are a researcher of.")
        super().save_model(request, obj, form, change)  # type: ignore[misc]


class TeamMembershipInline(admin.TabularInline):  # type: ignore[type-arg]
    model = TeamMembership
    extra = 1


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):  # type: ignore[type-arg]
    """Teams and their members: superusers only, whatever model permissions say."""

    inlines = [TeamMembershipInline]
    list_display = ("name", "member_count", "study_count", "created_at")
    search_fields = ("name",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Team]:
        queryset: QuerySet[Team] = super().get_queryset(request)
        return queryset.annotate(
            n_members=Count("memberships", distinct=True), n_studies=Count("studies", distinct=True)
        )

    @admin.display(description="Members", ordering="n_members")
    def member_count(self, obj: Any) -> int:
        return int(obj.n_members)

    @admin.display(description="Studies", ordering="n_studies")
    def study_count(self, obj: Any) -> int:
        return int(obj.n_studies)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return bool(request.user.is_active and request.user.is_superuser)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return self.has_module_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return self.has_module_permission(request)
