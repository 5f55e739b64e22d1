"""One report per results page: the page computes it, its figures read it back.

The results page shows a table and four figures, each figure a request of its own. Before,
each figure computed the whole report again (four reports for one page view), and a
participant finishing in between made a figure disagree with the table beside it. Now the
page puts the report it rendered in the shared cache under a random token, the figure URLs
carry the token, and the plot view reads that report back. A figure requested without a
token, or after the token expired, computes a fresh report, as before.

The cache key holds the study's primary key, and the plot view looks the study up among
those the user may see before reading the cache: a token copied from another team's page
finds nothing under this study's key.
"""

from __future__ import annotations

import re
import secrets

from django.core.cache import cache

from analysis.services import StudyReport, study_report
from surveys.models import Study

# Long enough for a page's figures to load, short enough that a stale report goes soon.
REPORT_SECONDS = 10 * 60
_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")


def _key(*, study: Study, token: str) -> str:
    return f"analysis:report:{study.pk}:{token}"


def report_share(*, study: Study, report: StudyReport) -> str:
    """Keep ``report`` for the page's figures; returns the token their URLs carry."""
    token = secrets.token_urlsafe(16)
    cache.set(_key(study=study, token=token), report, REPORT_SECONDS)
    return token


def report_for_figures(*, study: Study, token: str | None) -> StudyReport:
    """The report the results page shared under ``token``, else a fresh one without the
    mixed model (the figures draw nothing from it)."""
    if token and _TOKEN.fullmatch(token):
        shared = cache.get(_key(study=study, token=token))
        if isinstance(shared, StudyReport):
            return shared
    return study_report(study=study, mixed_max_ratings=0)
