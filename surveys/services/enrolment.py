"""Enrolment: the panel's ids in a study link, who may enter, and the assignment of a
new participant to a condition and its articles (least filled first, under the study's
row lock)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypedDict

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Q
from django.utils import timezone

from surveys import fraud
from surveys.models import Article, Condition, Participant, Study, Trial
from surveys.privacy import keyed_hash
from surveys.selectors import study_articles_per_participant
from surveys.services.assignment import within_assignment

if TYPE_CHECKING:
    from django_stubs_ext import WithAnnotations


class _Fill(TypedDict):
    filled: int


class _Exposure(TypedDict):
    exposure: int


class StudyClosedError(Exception):
    """The study does not accept participants (draft or closed)."""


class StudyFullError(Exception):
    """No condition can take a new participant: every quota is reached, or a condition
    has too few articles."""


class PanelIdRequiredError(Exception):
    """The study takes only participants who arrive with a panel id."""


# The width of the panel columns on Participant. Longer values are refused, never cut:
# two long ids cut to the same prefix would share one participation.
PANEL_VALUE_MAX = 100


@dataclass(frozen=True)
class PanelIds:
    """Identifiers a recruitment panel passes in the study link."""

    panel: str = ""
    pid: str = ""
    study_id: str = ""
    session_id: str = ""

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> PanelIds:
        """Read Prolific (PROLIFIC_PID, STUDY_ID, SESSION_ID) or MTurk
        (workerId, hitId, assignmentId) parameters; empty when there are none.

        Values are stripped of surrounding whitespace, and an id that is blank after
        that counts as no id at all (the same person with and without a stray space is
        one participant). Raises ValidationError for a value longer than the columns."""
        for fields, panel in (
            (("PROLIFIC_PID", "STUDY_ID", "SESSION_ID"), Participant.Panel.PROLIFIC),
            (("workerId", "hitId", "assignmentId"), Participant.Panel.MTURK),
        ):
            values = [str(query.get(name) or "").strip() for name in fields]
            if not values[0]:
                continue
            if any(len(value) > PANEL_VALUE_MAX for value in values):
                raise ValidationError(
                    f"The panel parameters in this link are longer than {PANEL_VALUE_MAX} "
                    "characters, which no panel sends. Please use the link from your panel."
                )
            return cls(panel=panel, pid=values[0], study_id=values[1], session_id=values[2])
        return cls()

    @property
    def pid_hash(self) -> str:
        """The keyed hash that identifies the id in the database (empty without an id)."""
        return panel_pid_hash(pid=self.pid)


def panel_pid_hash(*, pid: str) -> str:
    """The pseudonym of a panel id that lookups and the one-participation constraint use."""
    return keyed_hash(value=pid, purpose="panel")


def _participant_seed(study: Study, sequence: int) -> int:
    digest = hashlib.sha256(f"{study.seed}:{sequence}".encode()).digest()
    return int.from_bytes(digest[:6], "big")


def conditions_with_fill(*, study: Study) -> list[WithAnnotations[Condition, _Fill]]:
    """The study's conditions annotated with ``filled``: completed participants and those
    still holding a place (in progress within the reservation window). Test sessions
    never count."""
    holding = fraud.quota_counted(
        study=study, participants=Participant.objects.real().holding_a_place(study)
    ).values("pk")
    return list(
        study.conditions.annotate(
            filled=Count("participants", filter=Q(participants__in=holding))
        ).order_by("id")
    )


def condition_pick(*, study: Study, rng: random.Random, respect_quotas: bool = True) -> Condition:
    """The least-filled condition with room left under its quota, counting completed
    participants and those still holding a place; ties broken at random. Raises
    StudyFullError when every condition has reached its quota. Previews pass
    ``respect_quotas=False``: a researcher may try out a full study."""
    open_conditions = [
        c
        for c in conditions_with_fill(study=study)
        if not respect_quotas or c.quota is None or c.filled < c.quota
    ]
    if not open_conditions:
        raise StudyFullError(f'The study "{study.slug}" is full.')
    lowest = min(c.filled for c in open_conditions)
    return rng.choice([c for c in open_conditions if c.filled == lowest])


def study_is_full(*, study: Study) -> bool:
    """True when no condition has room for a newcomer (every quota reached)."""
    return all(
        c.quota is not None and c.filled >= c.quota for c in conditions_with_fill(study=study)
    )


def articles_pick(*, condition: Condition, k: int, rng: random.Random) -> list[Article]:
    """k articles of the condition, least-exposed first (ties at random), so that every
    article is rated about equally often; returned in a random order."""
    study = condition.study
    holding = Participant.objects.real().holding_a_place(study).filter(condition=condition)
    articles: list[WithAnnotations[Article, _Exposure]] = list(
        condition.articles.annotate(
            exposure=Count("trials", filter=Q(trials__participant__in=holding.values("pk")))
        ).order_by("id")
    )
    rng.shuffle(articles)
    articles.sort(key=lambda a: a.exposure)  # stable: shuffled order breaks ties
    chosen: list[Article] = list(articles[:k])
    rng.shuffle(chosen)
    return chosen


def within_articles_pick(*, study: Study, rng: random.Random) -> list[tuple[Condition, Article]]:
    """For a within-subjects design: ``per_participant`` articles of every condition, no
    two of the same story, least-exposed first within each condition (exposure counts
    non-test participants holding a place, per condition the article was shown in), in
    one random order. Across participants a story therefore alternates between its real
    and its generated forms. Fewer pairs than asked when the conditions cannot supply
    them (study_validate_design reports that before launch)."""
    conditions = list(study.conditions.order_by("id"))
    holding = Participant.objects.real().holding_a_place(study).values("pk")
    exposures = {
        (condition_id, article_id): n
        for condition_id, article_id, n in Trial.objects.filter(
            condition__study=study, participant__in=holding
        )
        .values("condition_id", "article_id")
        .annotate(n=Count("pk"))
        .values_list("condition_id", "article_id", "n")
    }
    chosen = within_assignment(conditions=conditions, exposures=exposures, rng=rng)
    # Sorted first so that the shuffle alone (the participant's seed) decides the order.
    chosen.sort(key=lambda pair: (pair[0].pk, pair[1].pk))
    rng.shuffle(chosen)
    return chosen


def participant_find(*, study: Study, panel: PanelIds) -> Participant | None:
    """The study's participation for this panel id, found by the id's keyed hash: it
    stays found after the id itself was cleared (withdrawal) or pseudonymised."""
    if not panel.pid:
        return None
    # Unordered: (study, panel id hash) is unique, so no ORDER BY to compile and run.
    rows = Participant.objects.filter(study=study, panel_pid_hash=panel.pid_hash).order_by()
    return next(iter(rows[:1]), None)


def participant_enroll(
    *,
    study: Study,
    panel: PanelIds,
    is_test: bool = False,
    user_agent: str = "",
    network_hash: str = "",
) -> Participant:
    """Create a participation after consent, or return the existing one for this panel id.

    Assignment runs with the study row locked, so concurrent arrivals are counted one
    after another and cannot overshoot a condition. The unique constraint on
    (study, panel id hash) catches a second tab or double click racing past the lookup.
    A study that requires a panel id raises PanelIdRequiredError without one (previews
    excepted). ``network_hash`` is surveys.privacy.network_hash of the request.
    """
    if not study.accepts_participants and not is_test:
        raise StudyClosedError(f'The study "{study.slug}" is not accepting participants.')
    if study.require_panel_id and not panel.pid and not is_test:
        raise PanelIdRequiredError(f'The study "{study.slug}" requires a panel id.')
    existing = participant_find(study=study, panel=panel)
    if existing is not None:
        return existing
    try:
        with transaction.atomic():
            locked = Study.objects.select_for_update().get(pk=study.pk)
            if not locked.accepts_participants and not is_test:
                # Closed (by quota, or by a researcher) while this request waited.
                raise StudyClosedError(f'The study "{study.slug}" is not accepting participants.')
            sequence = Participant.objects.filter(study=locked).count()
            seed = _participant_seed(locked, sequence)
            rng = random.Random(seed)
            condition: Condition | None
            if locked.design == Study.Design.WITHIN:
                condition = None
                pairs = within_articles_pick(study=locked, rng=rng)
                if len(pairs) < study_articles_per_participant(study=locked):
                    raise StudyFullError(
                        f'The study "{study.slug}" has too few articles of distinct stories.'
                    )
            else:
                condition = condition_pick(study=locked, rng=rng, respect_quotas=not is_test)
                articles = articles_pick(
                    condition=condition, k=locked.articles_per_participant, rng=rng
                )
                if len(articles) < locked.articles_per_participant:
                    raise StudyFullError(f'Condition "{condition.name}" has too few articles.')
                pairs = [(condition, article) for article in articles]
            now = timezone.now()
            participant = Participant.objects.create(
                study=locked,
                condition=condition,
                panel=panel.panel,
                panel_pid=panel.pid,
                panel_pid_hash=panel.pid_hash,
                panel_study_id=panel.study_id,
                panel_session_id=panel.session_id,
                is_test=is_test,
                seed=seed,
                design_hash=locked.design_hash,
                consented_at=now,
                last_seen_at=now,
                completion_code=locked.completion_code
                or Participant._meta.get_field("completion_code").get_default(),
                user_agent=user_agent[:300],
                network_hash=network_hash,
            )
            Trial.objects.bulk_create(
                Trial(participant=participant, article=article, condition=drawn_from, position=i)
                for i, (drawn_from, article) in enumerate(pairs, start=1)
            )
            return participant
    except IntegrityError:
        existing = participant_find(study=study, panel=panel)
        if existing is None:
            raise
        return existing
