"""The one place where querysets become DataFrames (or flat rows for exports).

Everything is read with ``values_list`` (and a server-side ``iterator`` or pages of
participants) so that a study with a million ratings is read in chunks of plain tuples,
never as a million model instances. One module per frame:

- :mod:`~analysis.frames.responses`: the long frame, one row per answer about an article;
- :mod:`~analysis.frames.participants`: one row per participation, the exclusion ledger,
  and once-per-participant answers;
- :mod:`~analysis.frames.articles`: the article manifest and the detector scores;
- :mod:`~analysis.frames.columns`: how columns are read (shared by the three).
"""

from __future__ import annotations

from analysis.frames.articles import (
    ARTICLE_SCORE_COLUMNS,
    DETECTOR_GAP_COLUMNS,
    MANIFEST_COLUMNS,
    SCORE_METRICS,
    article_scores_frame,
    articles_manifest_frame,
    detector_gaps,
)
from analysis.frames.columns import CHUNK_SIZE, DATETIME_COLUMNS
from analysis.frames.participants import (
    FIXED_STEPS,
    PARTICIPANT_ANSWER_COLUMNS,
    PARTICIPANT_COLUMNS,
    SIGNAL_COLUMNS,
    LedgerStep,
    RuleStep,
    analysed_mask,
    exclusion_ledger,
    exclusion_reason_labels,
    exclusion_rule_steps,
    participant_answers_frame,
    participant_exclusion_reasons,
    participants_frame,
)
from analysis.frames.responses import (
    RESPONSE_COLUMNS,
    RESPONSE_FIELDS,
    participant_id_pages,
    participant_id_ranges,
    responses_chunks,
    responses_frame,
    responses_max_position,
)

__all__ = [
    "ARTICLE_SCORE_COLUMNS",
    "CHUNK_SIZE",
    "DATETIME_COLUMNS",
    "DETECTOR_GAP_COLUMNS",
    "FIXED_STEPS",
    "MANIFEST_COLUMNS",
    "PARTICIPANT_ANSWER_COLUMNS",
    "PARTICIPANT_COLUMNS",
    "RESPONSE_COLUMNS",
    "RESPONSE_FIELDS",
    "SCORE_METRICS",
    "SIGNAL_COLUMNS",
    "LedgerStep",
    "RuleStep",
    "analysed_mask",
    "article_scores_frame",
    "articles_manifest_frame",
    "detector_gaps",
    "exclusion_ledger",
    "exclusion_reason_labels",
    "exclusion_rule_steps",
    "participant_answers_frame",
    "participant_exclusion_reasons",
    "participant_id_pages",
    "participant_id_ranges",
    "participants_frame",
    "responses_chunks",
    "responses_frame",
    "responses_max_position",
]
