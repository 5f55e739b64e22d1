"""Helpers shared by the analysis commands."""

from __future__ import annotations

from django.core.management.base import CommandError

from surveys.models import Study


def study_by_slug(slug: str) -> Study:
    """The study, or a CommandError naming the studies that do exist."""
    study = Study.objects.filter(slug=slug).first()
    if study is None:
        existing = sorted(Study.objects.values_list("slug", flat=True))
        known = ", ".join(existing) if existing else "none yet"
        raise CommandError(f'No study with slug "{slug}". Existing studies: {known}.')
    return study
