"""The stimulus pool, study designs, participants and their answers: ``articles``,
``studies`` and ``participation``, all importable from here.

Invariants that matter to the data are database constraints first: one participation per
panel id per study, one response per trial x question, one article per content hash.
"""

from surveys.models.articles import (
    WIKINEWS_ATTRIBUTION,
    Article,
    ArticleScore,
    content_hash,
    first_paragraph,
    word_count,
)
from surveys.models.participation import (
    Participant,
    Response,
    Trial,
    WithdrawalLog,
    _new_completion_code,
)
from surveys.models.studies import (
    Condition,
    ExclusionRule,
    Question,
    Study,
    Team,
    TeamMembership,
    completion_url_is_safe,
    completion_url_validator,
)

__all__ = [
    "WIKINEWS_ATTRIBUTION",
    "Article",
    "ArticleScore",
    "Condition",
    "ExclusionRule",
    "Participant",
    "Question",
    "Response",
    "Study",
    "Team",
    "TeamMembership",
    "Trial",
    "WithdrawalLog",
    "_new_completion_code",
    "completion_url_is_safe",
    "completion_url_validator",
    "content_hash",
    "first_paragraph",
    "word_count",
]
