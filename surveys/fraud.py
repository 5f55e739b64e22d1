"""Fraud and careless- or assisted-answering signals: what is recorded per participation,
and the rules that turn the records into flags. The one place these rules live; the
monitor, the exports, the API, the exclusion rules and the quotas all ask this module.

Modelled on the fraud detection of the big survey platforms (Qualtrics' duplicate and bot
flags): signals *flag* a participation, they never refuse it. A flagged participation is
kept and exported with its flags; the researcher decides, before launch, whether it is
excluded (an ``ExclusionRule`` of the signal's kind), analysed separately (the flag
columns), and whether it holds a place under the quotas (``Study.flagged_hold_no_place``).
Refusing would tell a bot's author which check tripped, and lock out the real people a
signal misjudges (a household sharing a network, a password manager filling a field).

The signals:

``duplicate_browser``
    Another participation of the same study came from the same browser: a first-party,
    long-lived cookie holding a random id (``BROWSER_COOKIE``), stored only as a keyed hash
    (``Participant.browser_hash``, ``surveys.privacy``). Panel ids are unique per study, so
    the other participation came under another panel id (or none): one person taking the
    study twice. Every participation of such a browser is flagged, the first one too.
``network_burst``
    More than ``CREDENCE_BURST_PARTICIPATIONS`` participations of the study arrived (consent
    time) from one network (a keyed hash of the IP address, ``Participant.network_hash``;
    never the address) within ``CREDENCE_BURST_MINUTES``. Every participation inside such
    a window is flagged. The default, more than 5 within 10 minutes, is far above what one
    household or office contributes to one study of a panel (panels spread a study over
    thousands of people and limit one place per account), yet catches a script or a click
    farm working through accounts. Mobile carriers put many subscribers behind one address
    (carrier-grade NAT), so a large launch can flag a few real people: a flag, not a
    refusal, for that reason.
``honeypot``
    The consent form's hidden field (``HONEYPOT_FIELD``), which people never see or reach
    with the keyboard and screen readers skip, came back filled in, as form-filling bots do.
``copied`` / ``pasted``
    Text of the article was copied, or something was pasted into a free-text answer on
    any page of questions (counted by ``surveys/static/surveys/signals.js``; counts only,
    never contents). In a study of machine-written news, a participant who copies the
    article may be asking a chatbot. Per page the most any accepted submission reported
    (a double submit does not double the count), summed over the participation: article
    pages on their trial, the pages asked once (comprehension, checks, about you) in
    ``Participant.page_pastes``.
``no_javascript``
    The participation answered articles and none of those answers ran the script (the
    script sets ``credence_js=1`` on submit). Such participants are allowed; the flag counts them,
    and it tells the researcher that their reading times and copy counts are unmeasured.
    Unknown (None) until the first article is answered.
"""

from __future__ import annotations

import re
import secrets
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Sum, Value
from django.db.models.functions import Coalesce, Greatest
from django.http import HttpRequest, HttpResponse

from surveys.forms import timing_parse
from surveys.models import ExclusionRule, Participant, Study, Trial
from surveys.privacy import keyed_hash

# The browser cookie: a random id, nothing else. A year, so that a second panel account
# used weeks later in the same browser is still recognised.
BROWSER_COOKIE = "credence_browser"
BROWSER_COOKIE_MAX_AGE = 365 * 24 * 60 * 60
_BROWSER_ID = re.compile(r"[A-Za-z0-9_-]{32}")

# A name form-filling bots fill in and browsers' autofill leaves alone (no autocomplete
# type is called "website"; the field also says autocomplete="off").
HONEYPOT_FIELD = "website"

# The hidden inputs signals.js fills on an article page; prefixed so that no question key
# (a researcher's slug, also a form field) can collide with them.
FIELD_COPIES = "credence_copies"
FIELD_PASTES = "credence_pastes"
FIELD_JS = "credence_js"

# More than a person can do on one page; anything above is a forged value and ignored.
MAX_SIGNAL_COUNT = 10_000

SIGNALS: tuple[tuple[str, str], ...] = (
    ("duplicate_browser", "Same browser as another participation"),
    ("network_burst", "Burst from one network"),
    ("honeypot", "Hidden field filled in"),
    ("copied", "Copied article text"),
    ("pasted", "Pasted into an answer"),
    ("no_javascript", "No JavaScript"),
)
# The signals that make a participation "flagged" for the quotas: each says something
# about who answered or how. Answering without JavaScript is allowed and says nothing.
FLAGGING = ("duplicate_browser", "network_burst", "honeypot", "copied", "pasted")
_EXCLUSION_KINDS = {
    ExclusionRule.Kind.DUPLICATE_BROWSER: "duplicate_browser",
    ExclusionRule.Kind.NETWORK_BURST: "network_burst",
    ExclusionRule.Kind.HONEYPOT: "honeypot",
    ExclusionRule.Kind.COPIED: "copied",
    ExclusionRule.Kind.PASTED: "pasted",
    ExclusionRule.Kind.NO_JAVASCRIPT: "no_javascript",
}


@dataclass(frozen=True)
class Signals:
    """One participation's signals. ``copies`` and ``pastes`` are None when no answer ran
    the script; ``javascript`` is None before the first article is answered."""

    duplicate_browser: bool = False
    network_burst: bool = False
    honeypot: bool = False
    copies: int | None = None
    pastes: int | None = None
    javascript: bool | None = None

    @property
    def copied(self) -> bool:
        return bool(self.copies)

    @property
    def pasted(self) -> bool:
        return bool(self.pastes)

    @property
    def no_javascript(self) -> bool:
        return self.javascript is False

    @property
    def flagged(self) -> bool:
        return any(getattr(self, name) for name in FLAGGING)


@dataclass(frozen=True)
class BurstLimits:
    participations: int
    minutes: int


def burst_limits() -> BurstLimits:
    """``CREDENCE_BURST_PARTICIPATIONS`` and ``CREDENCE_BURST_MINUTES`` (see the module
    docstring for the defaults' reasoning)."""
    return BurstLimits(
        participations=int(getattr(settings, "CREDENCE_BURST_PARTICIPATIONS", 5)),
        minutes=int(getattr(settings, "CREDENCE_BURST_MINUTES", 10)),
    )


# ---------------------------------------------------------------------------------------
# Recording


def browser_id_of(request: HttpRequest) -> str:
    """The browser's random id from its cookie, or "" when it has none (or a malformed
    one, which is replaced)."""
    value = request.COOKIES.get(BROWSER_COOKIE, "")
    return value if _BROWSER_ID.fullmatch(value) else ""


def browser_cookie_set(*, response: HttpResponse, request: HttpRequest, browser_id: str) -> None:
    """(Re)set the browser cookie: first-party, HttpOnly (no script reads it), SameSite=Lax
    (sent when a panel's link is followed), Secure on an https site."""
    response.set_cookie(
        BROWSER_COOKIE,
        browser_id,
        max_age=BROWSER_COOKIE_MAX_AGE,
        httponly=True,
        samesite="Lax",
        secure=request.is_secure() or bool(getattr(settings, "SESSION_COOKIE_SECURE", False)),
    )


def enrolment_signals_record(*, participant: Participant, request: HttpRequest) -> str:
    """Record what the consent POST tells about who arrived: the keyed hash of the
    browser's cookie id (a new id when the browser has none), and whether the honeypot
    field came back filled in (the network's hash is recorded by enrolment itself). A
    participation that already has its hash (a double submit reaching an existing one)
    keeps it. Returns the browser id for the response's cookie."""
    browser_id = browser_id_of(request) or secrets.token_urlsafe(24)
    updates: dict[str, object] = {}
    if not participant.browser_hash:
        updates["browser_hash"] = keyed_hash(value=browser_id, purpose="browser")
    if request.POST.get(HONEYPOT_FIELD, "").strip() and not participant.honeypot_filled:
        updates["honeypot_filled"] = True
    if updates:
        Participant.objects.filter(pk=participant.pk).update(**updates)
    return browser_id


def _count_parse(raw: str | None) -> int:
    return timing_parse(raw=raw, maximum=MAX_SIGNAL_COUNT) or 0


@dataclass(frozen=True)
class PageSignals:
    """What signals.js posted with an article page."""

    copies: int
    pastes: int


def page_signals_parse(*, data: Mapping[str, str]) -> PageSignals | None:
    """The counts a submitted article page carries, read defensively: the script's marker
    (``credence_js=1``) or nothing (None); each count a bounded whole number, anything else 0."""
    if (data.get(FIELD_JS) or "").strip() != "1":
        return None
    return PageSignals(
        copies=_count_parse(data.get(FIELD_COPIES)), pastes=_count_parse(data.get(FIELD_PASTES))
    )


def trial_signals_record(*, trial: Trial, data: Mapping[str, str]) -> None:
    """Keep the most copies and pastes any accepted submission of the article page
    reported: a double submit or a refresh re-sends the same counts, and a revisit
    starts again from what the page showed."""
    signals = page_signals_parse(data=data)
    if signals is None:
        return
    Trial.objects.filter(pk=trial.pk).update(
        copies=Greatest(Coalesce("copies", 0), Value(signals.copies)),
        pastes=Greatest(Coalesce("pastes", 0), Value(signals.pastes)),
    )


def page_pastes_record(*, participant: Participant, page: str, data: Mapping[str, str]) -> None:
    """Keep the most pastes any accepted submission of a page asked once (``page``, e.g.
    "about" or "check-2") reported. Writes only when there was a paste: one locked read
    and one update then, nothing for everyone else."""
    signals = page_signals_parse(data=data)
    if signals is None or signals.pastes == 0:
        return
    with transaction.atomic():
        locked = Participant.objects.select_for_update().only("page_pastes").get(pk=participant.pk)
        pastes = dict(locked.page_pastes or {})
        if signals.pastes <= int(pastes.get(page, 0)):
            return
        pastes[page] = signals.pastes
        Participant.objects.filter(pk=participant.pk).update(page_pastes=pastes)


def page_signals_carry(*, values: Mapping[str, str]) -> dict[str, int]:
    """The counts to start from when a page is shown again after a validation error."""
    return {
        "copies": _count_parse(values.get(FIELD_COPIES)),
        "pastes": _count_parse(values.get(FIELD_PASTES)),
    }


# ---------------------------------------------------------------------------------------
# Judging


def _compared(study: Study) -> QuerySet[Participant]:
    """The participations signals compare: the study's real ones, whatever their status
    (someone who withdrew and came back under another id is still the same browser)."""
    return Participant.objects.for_study(study).real().order_by()


def _shared_browsers(study: Study) -> QuerySet[Participant, dict[str, Any]]:
    """Browser hashes of the study that more than one real participation carries."""
    return (
        _compared(study)
        .exclude(browser_hash="")
        .order_by()
        .values("browser_hash")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .values("browser_hash")
    )


def duplicate_browser_ids(*, study: Study) -> set[int]:
    """Participations whose browser hash another participation of the study shares."""
    shared = _compared(study).filter(browser_hash__in=_shared_browsers(study))
    return set(shared.values_list("pk", flat=True))


def _in_bursts(arrivals: list[tuple[datetime, int]], limits: BurstLimits) -> set[int]:
    """Ids of the arrivals (consent time, id) inside some window of ``limits.minutes``
    that holds more than ``limits.participations`` of them."""
    arrivals.sort()
    window = timedelta(minutes=limits.minutes)
    flagged: set[int] = set()
    end = 0
    for start, (began, _) in enumerate(arrivals):
        end = max(end, start)
        while end + 1 < len(arrivals) and arrivals[end + 1][0] - began <= window:
            end += 1
        if end - start + 1 > limits.participations:
            flagged.update(pid for _, pid in arrivals[start : end + 1])
    return flagged


def network_burst_ids(*, study: Study) -> set[int]:
    """Participations that arrived in a burst from their network (see the module
    docstring). Only networks with more than the limit's participations are read."""
    limits = burst_limits()
    busy = (
        _compared(study)
        .exclude(network_hash="")
        .order_by()
        .values("network_hash")
        .annotate(n=Count("pk"))
        .filter(n__gt=limits.participations)
        .values("network_hash")
    )
    by_network: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for network, consented_at, pid in (
        _compared(study)
        .filter(network_hash__in=busy)
        .values_list("network_hash", "consented_at", "pk")
    ):
        by_network[network].append((consented_at, pid))
    flagged: set[int] = set()
    for arrivals in by_network.values():
        flagged |= _in_bursts(arrivals, limits)
    return flagged


def _page_counts(
    participants: QuerySet[Participant],
) -> dict[int, tuple[int | None, int | None, bool]]:
    """Participant id -> (copies, pastes, answered an article) for those who answered one;
    the sums are None when no answer ran the script."""
    rows = (
        Trial.objects.filter(participant__in=participants, answered_at__isnull=False)
        .order_by()
        .values("participant_id")
        .annotate(copies=Sum("copies"), pastes=Sum("pastes"))
        .values_list("participant_id", "copies", "pastes")
    )
    return {pid: (copies, pastes, True) for pid, copies, pastes in rows}


def participation_signals(
    *, study: Study, participants: QuerySet[Participant] | None = None
) -> dict[int, Signals]:
    """Participant id -> their signals, for every participation of the study (or of
    ``participants``, a subset of it). Duplicates and bursts are judged against the whole
    study, whatever the subset. A few aggregate queries, whatever the number of people."""
    # No default ordering: it would join the study table into every read.
    subset = Participant.objects.filter(study=study).order_by()
    if participants is not None:
        subset = subset.filter(pk__in=participants.values("pk"))
    duplicates = duplicate_browser_ids(study=study)
    bursts = network_burst_ids(study=study)
    pages = _page_counts(subset)
    signals = {}
    for pid, honeypot, page_pastes in subset.values_list("pk", "honeypot_filled", "page_pastes"):
        copies, pastes, answered = pages.get(pid, (None, None, False))
        if once := sum(int(n) for n in (page_pastes or {}).values()):
            pastes = (pastes or 0) + once
        signals[pid] = Signals(
            duplicate_browser=pid in duplicates,
            network_burst=pid in bursts,
            honeypot=honeypot,
            copies=copies,
            pastes=pastes,
            javascript=(copies is not None) if answered else None,
        )
    return signals


def _flagged(study: Study) -> Q:
    """The participations any flagging signal (``FLAGGING``) marks, as a filter: in SQL
    but for the network bursts, whose few ids are computed first."""
    copied_or_pasted = Trial.objects.filter(participant=OuterRef("pk")).filter(
        Q(copies__gt=0) | Q(pastes__gt=0)
    )
    return (
        Q(honeypot_filled=True)
        | Q(browser_hash__in=_shared_browsers(study))
        | Q(pk__in=network_burst_ids(study=study))
        | Q(Exists(copied_or_pasted))
        # Only pages with a paste are stored.
        | ~Q(page_pastes={})
    )


def flagged_ids(*, study: Study) -> set[int]:
    """Real participations of the study that any flagging signal (``FLAGGING``) marks."""
    return set(_compared(study).filter(_flagged(study)).values_list("pk", flat=True))


def quota_counted(*, study: Study, participants: QuerySet[Participant]) -> QuerySet[Participant]:
    """``participants`` less the flagged ones when the study lets flagged participations
    hold no place under its quotas (``Study.flagged_hold_no_place``); unchanged otherwise.
    One query more (the network bursts) when it applies."""
    if not study.flagged_hold_no_place:
        return participants
    return participants.exclude(_flagged(study))


def signal_threshold(rule: ExclusionRule) -> int:
    """How many copies or pastes a copied/pasted rule excludes at: its threshold, once
    when none is set."""
    return 1 if rule.threshold is None else int(rule.threshold)


def signal_rule_excludes(*, rule: ExclusionRule, judged: QuerySet[Participant]) -> set[int]:
    """Of the ``judged`` participations (of ``rule.study``), those a signal rule removes."""
    signals = participation_signals(study=rule.study, participants=judged)
    name = _EXCLUSION_KINDS[ExclusionRule.Kind(rule.kind)]
    if name == "copied":
        return {pid for pid, s in signals.items() if (s.copies or 0) >= signal_threshold(rule)}
    if name == "pasted":
        return {pid for pid, s in signals.items() if (s.pastes or 0) >= signal_threshold(rule)}
    return {pid for pid, s in signals.items() if getattr(s, name)}


def is_signal_rule(rule: ExclusionRule) -> bool:
    return rule.kind in _EXCLUSION_KINDS


# ---------------------------------------------------------------------------------------
# The monitor


@dataclass(frozen=True)
class SignalRow:
    """How many participations (test sessions left out) each signal flagged, in one
    condition (``condition`` "all" for the whole study), and how many any flagging
    signal marked."""

    condition: str
    participations: int
    counts: tuple[int, ...]  # in SIGNALS order
    flagged: int


def _row(condition: str, signals: Iterable[Signals]) -> SignalRow:
    rows = list(signals)
    return SignalRow(
        condition=condition,
        participations=len(rows),
        counts=tuple(sum(1 for s in rows if getattr(s, name)) for name, _ in SIGNALS),
        flagged=sum(1 for s in rows if s.flagged),
    )


def study_signal_counts(*, study: Study) -> list[SignalRow]:
    """Per condition (none in within-subjects designs), then for the whole study: how
    many real participations each signal flagged."""
    real = _compared(study)
    signals = participation_signals(study=study, participants=real)
    by_condition: dict[int | None, list[Signals]] = defaultdict(list)
    for pid, condition_id in real.values_list("pk", "condition_id"):
        by_condition[condition_id].append(signals[pid])
    rows = []
    if study.design != Study.Design.WITHIN:
        for condition_id, name in study.conditions.order_by("id").values_list("pk", "name"):
            rows.append(_row(name, by_condition.get(condition_id, [])))
    rows.append(_row("all", signals.values()))
    return rows
