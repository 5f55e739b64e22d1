"""The researchers' side: the stimulus pool, study design, lifecycle and monitoring.

One module per subject: ``teams`` (who sees what, and the team pools), ``articles``,
``design`` (conditions, questions, exclusion rules), ``studies`` (lifecycle, power plan,
monitor), ``participants`` (read-only data) and ``audit``. Importing this package
registers them all with the admin site.

A study's design is locked once it is live: its design fields are read-only here, its
condition and question inlines can no longer add, change or delete, and every write path
below the forms checks ``study_assert_editable``. Status changes only through the
lifecycle buttons and actions, which call ``study_set_status``. Participants, trials and
responses are read-only: nothing in the admin can edit an answer.

Research teams decide who sees and changes what, not Django's per-model permissions.
Every study-related page (studies, conditions, participants, trials, responses,
withdrawals, and the design inlines) shows only ``surveys.selectors.studies_visible_to``
the user, and its ``has_*_permission`` methods ask the user's role in the study's team
(``study_role_of``): superusers may do everything; a team's researchers may view and
change its studies and add new ones; its analysts may only view (and export on the
results pages); staff outside the team get 404 on its pages. So a researcher needs only
``is_staff`` and a team membership, no model permissions. Teams and memberships are
managed by superusers only.

Articles, and generation runs with their samples (``generation.admin``), belong to the
team that made them (``TeamPoolAdmin``): its members see them, its researchers change
them, and other teams' staff get 404. Those without a team form the shared pool (the
imported corpus): every team reads it; superusers, and staff a superuser gave Django's
model permission, change it. An article used by a study the user may not edit is
read-only for them whatever the study's status (``surveys.selectors.article_editable_by``).
"""

from surveys.admin import articles, audit, design, participants, studies, teams
from surveys.admin.design import QuestionForm
from surveys.admin.teams import TeamPoolAdmin

__all__ = [
    "QuestionForm",
    "TeamPoolAdmin",
    "articles",
    "audit",
    "design",
    "participants",
    "studies",
    "teams",
]
