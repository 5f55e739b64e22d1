"""Chainable queryset methods shared by views, services, admin and analysis."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from django.db import models
from django.db.models import Q
from django.utils import timezone

if TYPE_CHECKING:
    from surveys.models import Study


class ArticleQuerySet(models.QuerySet):  # type: ignore[type-arg]
    def real(self) -> ArticleQuerySet:
        return self.filter(origin="real")

    def generated(self) -> ArticleQuerySet:
        return self.filter(origin="generated")

    def in_demo_pool(self) -> ArticleQuerySet:
        return self.filter(in_demo_pool=True)


class StudyQuerySet(models.QuerySet):  # type: ignore[type-arg]
    def accepting(self) -> StudyQuerySet:
        return self.filter(status__in=["pilot", "live"])


class ParticipantQuerySet(models.QuerySet):  # type: ignore[type-arg]
    def for_study(self, study: Study) -> ParticipantQuerySet:
        return self.filter(study=study)

    def real(self) -> ParticipantQuerySet:
        """Not preview/test sessions."""
        return self.filter(is_test=False)

    def completed(self) -> ParticipantQuerySet:
        return self.filter(status="completed")

    def holding_a_place(self, study: Study) -> ParticipantQuerySet:
        """Participants who count towards their condition's fill: completed, or still
        in progress and seen within the study's reservation window."""
        cutoff = timezone.now() - timedelta(minutes=study.reservation_minutes)
        return self.filter(
            Q(status="completed") | Q(status="in_progress", last_seen_at__gte=cutoff)
        )
