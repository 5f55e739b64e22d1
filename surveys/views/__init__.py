"""Participant pages: consent, instructions, comprehension questions, one article per page
with the attention-check pages among them, questions about the participant, finish,
debrief. Server-rendered, no JavaScript needed.

Where a participant may go is derived from stored answers only
(``participant_next_step``): pages ahead of them redirect back to their step, earlier
trials can be revisited and re-answered, and after completion everything leads to the
debrief. Every write is a POST followed by a redirect (POST/redirect/GET), so a refresh
never re-submits, and the services make a re-submission idempotent anyway.
"""

from surveys.views.entry import about, preview, start
from surveys.views.flow import (
    about_you,
    article,
    check,
    comprehension,
    debrief,
    finish,
    instructions,
    resume,
    withdraw,
)

__all__ = [
    "about",
    "about_you",
    "article",
    "check",
    "comprehension",
    "debrief",
    "finish",
    "instructions",
    "preview",
    "resume",
    "start",
    "withdraw",
]
