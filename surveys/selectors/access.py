"""Who sees and changes what: studies by team role, and the team-owned pools (articles,
generation runs)."""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from django.db.models import Model, Q, QuerySet

from surveys.models import Article, Study, Team, TeamMembership

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


# shows study data (admin, results pages, exports, API) asks these functions.

SUPERUSER = "superuser"
_EDITING_ROLES = frozenset({SUPERUSER, TeamMembership.Role.RESEARCHER})


def studies_visible_to(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Study]:
    """The studies whose design and data ``user`` may see: all of them for superusers,
    their teams' studies for other staff, none for anyone else. A study without a team is
    seen by superusers only."""
    return Study.objects.visible_to(user)


def study_role_of(*, user: AbstractBaseUser | AnonymousUser, study: Study) -> str | None:
    """``"superuser"``, the user's team role for the study (``"researcher"`` or
    ``"analyst"``), or None when the user may not see the study at all."""
    if not (user.is_authenticated and user.is_active):
        return None
    if getattr(user, "is_superuser", False):
        return SUPERUSER
    if not getattr(user, "is_staff", False) or study.team_id is None:
        return None
    return (
        TeamMembership.objects.filter(team_id=study.team_id, user_id=user.pk)
        .values_list("role", flat=True)
        .first()
    )


def role_can_edit(role: str | None) -> bool:
    """Whether a role returned by :func:`study_role_of` may change designs and the
    lifecycle (researchers and superusers) rather than only view and export (analysts)."""
    return role in _EDITING_ROLES


def user_roles(*, user: AbstractBaseUser | AnonymousUser) -> frozenset[str]:
    """Every role the user holds in any team (``{"superuser"}`` for superusers): whether
    the admin shows the study pages at all, and whether the user may add a study."""
    if not (user.is_authenticated and user.is_active):
        return frozenset()
    if getattr(user, "is_superuser", False):
        return frozenset({SUPERUSER})
    if not getattr(user, "is_staff", False):
        return frozenset()
    return frozenset(TeamMembership.objects.filter(user_id=user.pk).values_list("role", flat=True))


def studies_editable_by(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Study]:
    """The visible studies whose design and lifecycle ``user`` may change: all of them for
    superusers, those of the teams where the user is a researcher otherwise (whether the
    design is still unlocked is a separate question, see ``study_assert_editable``)."""
    visible = studies_visible_to(user=user)
    if getattr(user, "is_superuser", False):
        return visible
    # A subquery: a second filter() over team__memberships would join the memberships
    # again and match a team where *someone* is a researcher.
    return visible.filter(team__in=teams_for_new_study(user=user))


def teams_for_new_study(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Team]:
    """The teams a study created or moved by ``user`` may belong to: any team for a
    superuser, the teams where the user is a researcher otherwise."""
    if not (user.is_authenticated and user.is_active):
        return Team.objects.none()
    if getattr(user, "is_superuser", False):
        return Team.objects.all()
    if not getattr(user, "is_staff", False):
        return Team.objects.none()
    return Team.objects.filter(
        memberships__user_id=user.pk, memberships__role=TeamMembership.Role.RESEARCHER
    )


# ---------------------------------------------------------------------------------------
# Team-owned pools: articles and generation runs. An object with a team belongs to it:
# its members see it, its researchers change it. One without a team is shared (the
# imported corpus, runs from before teams owned runs): every team member reads it, and
# only superusers or holders of Django's model permission (granted by a superuser to the
# pool's curators) change it.


M = TypeVar("M", bound=Model)


def _has_perm(user: AbstractBaseUser | AnonymousUser, perm: str) -> bool:
    # AbstractBaseUser lacks has_perm in the stubs; the project's users (auth.User) have it.
    has_perm = getattr(user, "has_perm", None)
    return bool(has_perm is not None and has_perm(perm))


def _own_teams(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[Team]:
    return Team.objects.filter(memberships__user_id=user.pk or 0)


def pool_visible_to(
    *,
    user: AbstractBaseUser | AnonymousUser,
    queryset: QuerySet[M],
    view_perm: str,
    team_path: str = "team",
) -> QuerySet[M]:
    """``queryset`` narrowed to what ``user`` may see: everything for superusers; for
    other active staff, their teams' objects, and the shared ones (no team) when they
    hold a team role or ``view_perm``; nothing for anyone else."""
    if not (user.is_authenticated and user.is_active and getattr(user, "is_staff", False)):
        return queryset.none()
    if getattr(user, "is_superuser", False):
        return queryset
    mine = Q(**{f"{team_path}__in": _own_teams(user=user)})
    if user_roles(user=user) or _has_perm(user, view_perm):
        mine |= Q(**{f"{team_path}__isnull": True})
    return queryset.filter(mine)


def pool_editable_by(
    *, user: AbstractBaseUser | AnonymousUser, team_id: int | None, perm: str
) -> bool:
    """Whether ``user`` may change an object of a team-owned pool whose team is
    ``team_id``: superusers; researchers of that team; for a shared object, ``perm``."""
    if not (user.is_authenticated and user.is_active and getattr(user, "is_staff", False)):
        return False
    if getattr(user, "is_superuser", False):
        return True
    if team_id is None:
        return _has_perm(user, perm)
    return teams_for_new_study(user=user).filter(pk=team_id).exists()


def article_editable_by(
    *, user: AbstractBaseUser | AnonymousUser, article: Article, perm: str
) -> bool:
    """Whether ``user`` may change (``perm`` "surveys.change_article") or delete
    ("surveys.delete_article") ``article``: the pool rule, and, below superusers, no
    study the user may not edit uses it, whatever its status, so nobody changes the text
    another team's draft is about to show. (Live and closed studies lock their articles
    for everyone: ``surveys.admin``.)"""
    if not pool_editable_by(user=user, team_id=article.team_id, perm=perm):
        return False
    if getattr(user, "is_superuser", False):
        return True
    return not (
        Study.objects.filter(conditions__articles=article)
        .exclude(pk__in=studies_editable_by(user=user).values("pk"))
        .exists()
    )
