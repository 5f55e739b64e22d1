"""What the participant pages record for the fraud signals (surveys.fraud): the browser
cookie and its hash, the network hash (never the address), the honeypot, the copy and
paste counts and whether JavaScript ran, each through the real views."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.test import Client

from surveys import fraud
from surveys.models import Participant, Question, Study, Trial
from surveys.privacy import keyed_hash
from surveys.services import study_set_status
from tests.factories import ConditionFactory, QuestionFactory, RealArticleFactory, StudyFactory

pytestmark = pytest.mark.django_db

GOOD = {"credible": "yes", "believable": "3", "accurate": "2", "clear": "4"}
ADDRESS = "203.0.113.77"


def enrol(client: Client, study: Study, *, address: str = ADDRESS, **data: str) -> Participant:
    response = client.post(f"/s/{study.slug}/", {"consent": "yes", **data}, REMOTE_ADDR=address)
    assert response.status_code == 302
    return Participant.objects.get(token=response["Location"].split("/")[2])


def answer(client: Client, participant: Participant, position: int, **extra: str) -> None:
    url = f"/p/{participant.token}/article/{position}/"
    response = client.post(url, {**GOOD, **extra})
    assert response.status_code == 302


def started(client: Client, participant: Participant) -> None:
    assert client.post(f"/p/{participant.token}/instructions/").status_code == 302


@pytest.fixture
def two_articles(db: None) -> Study:
    return StudyFactory.create_live(articles_per_participant=2)


# ---------------------------------------------------------------------------------------
# The browser cookie


def test_consent_sets_a_first_party_http_only_lax_cookie_stored_only_as_a_hash(live_study):
    client = Client()
    participant = enrol(client, live_study, PROLIFIC_PID="P1")
    cookie = client.cookies[fraud.BROWSER_COOKIE]
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", cookie.value)
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert not cookie["secure"]  # plain http here
    assert int(cookie["max-age"]) == 365 * 24 * 60 * 60
    participant.refresh_from_db()
    assert participant.browser_hash == keyed_hash(value=cookie.value, purpose="browser")
    row = Participant.objects.filter(pk=participant.pk).values().get()
    assert cookie.value not in " ".join(str(v) for v in row.values())


def test_the_cookie_is_secure_on_an_https_site(live_study):
    client = Client()
    response = client.post(f"/s/{live_study.slug}/", {"consent": "yes"}, secure=True)
    assert response.status_code == 302
    assert client.cookies[fraud.BROWSER_COOKIE]["secure"] is True


def test_a_browser_keeps_its_id_and_a_malformed_one_is_replaced(live_study):
    client = Client()
    first = enrol(client, live_study, PROLIFIC_PID="P1")
    kept = client.cookies[fraud.BROWSER_COOKIE].value
    second = enrol(client, live_study, PROLIFIC_PID="P2")
    assert client.cookies[fraud.BROWSER_COOKIE].value == kept
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.browser_hash == second.browser_hash != ""

    forged = Client()
    forged.cookies[fraud.BROWSER_COOKIE] = "'; DROP TABLE x; --"
    third = enrol(forged, live_study, PROLIFIC_PID="P3")
    replaced = forged.cookies[fraud.BROWSER_COOKIE].value
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", replaced)
    third.refresh_from_db()
    assert third.browser_hash == keyed_hash(value=replaced, purpose="browser")


def test_same_browser_under_a_second_panel_id_flags_both_participations(live_study):
    shared = Client()
    first = enrol(shared, live_study, PROLIFIC_PID="P1")
    second = enrol(shared, live_study, PROLIFIC_PID="P2")
    other = enrol(Client(), live_study, PROLIFIC_PID="P3")
    assert fraud.duplicate_browser_ids(study=live_study) == {first.pk, second.pk}
    signals = fraud.participation_signals(study=live_study)
    assert signals[first.pk].duplicate_browser
    assert signals[second.pk].duplicate_browser
    assert not signals[other.pk].duplicate_browser


def test_the_same_browser_in_another_study_or_a_preview_is_no_duplicate(live_study):
    client = Client()
    first = enrol(client, live_study, PROLIFIC_PID="P1")
    elsewhere = StudyFactory.create_live()
    enrol(client, elsewhere, PROLIFIC_PID="P2")
    first.refresh_from_db()
    preview = Participant.objects.create(
        study=live_study,
        seed=1,
        is_test=True,
        consented_at=first.consented_at,
        last_seen_at=first.consented_at,
        browser_hash=first.browser_hash,
    )
    assert fraud.duplicate_browser_ids(study=live_study) == set()
    assert fraud.duplicate_browser_ids(study=elsewhere) == set()
    assert not fraud.participation_signals(study=live_study)[preview.pk].duplicate_browser


# ---------------------------------------------------------------------------------------
# The network


def test_the_network_is_stored_as_a_keyed_hash_and_never_the_address(live_study):
    participant = enrol(Client(), live_study, PROLIFIC_PID="P1")
    participant.refresh_from_db()
    assert participant.network_hash == keyed_hash(value=ADDRESS, purpose="network")
    row = Participant.objects.filter(pk=participant.pk).values().get()
    assert not any(ADDRESS in str(value) for value in row.values())
    assert not any("203.0.113" in str(value) for value in row.values())


def test_six_arrivals_from_one_network_within_ten_minutes_are_a_burst(live_study):
    people = [enrol(Client(), live_study, PROLIFIC_PID=f"P{i}") for i in range(6)]
    elsewhere = enrol(Client(), live_study, address="198.51.100.9", PROLIFIC_PID="Q")
    assert fraud.network_burst_ids(study=live_study) == {p.pk for p in people}
    assert elsewhere.pk not in fraud.network_burst_ids(study=live_study)


def test_five_arrivals_from_one_network_are_no_burst(live_study):
    for i in range(5):
        enrol(Client(), live_study, PROLIFIC_PID=f"P{i}")
    assert fraud.network_burst_ids(study=live_study) == set()


# ---------------------------------------------------------------------------------------
# The honeypot


def test_the_consent_form_has_a_honeypot_people_never_see_or_reach(live_study):
    html = Client().get(f"/s/{live_study.slug}/").content.decode()
    # Hidden as the site hides text meant for screen readers only, and aria-hidden so
    # that screen readers skip it too; out of the Tab order.
    field = re.search(r'<div class="visually-hidden" aria-hidden="true">.*?</div>', html)
    assert field is not None
    assert 'name="website"' in field.group(0)
    assert 'tabindex="-1"' in field.group(0)
    assert 'autocomplete="off"' in field.group(0)
    assert '<label for="id_website">' in field.group(0)
    css = Path("surveys/static/surveys/site.css").read_text()
    assert re.search(r"\.visually-hidden \{[^}]*clip: rect\(0 0 0 0\)", css)


def test_a_filled_honeypot_flags_the_participation_and_lets_it_in(live_study):
    bot = enrol(Client(), live_study, PROLIFIC_PID="BOT", website="http://spam.example")
    person = enrol(Client(), live_study, PROLIFIC_PID="P1", website="  ")
    bot.refresh_from_db()
    person.refresh_from_db()
    assert bot.status == Participant.Status.IN_PROGRESS
    assert bot.honeypot_filled is True
    assert person.honeypot_filled is False


# ---------------------------------------------------------------------------------------
# Copy, paste, JavaScript


def test_copy_and_paste_counts_are_stored_per_article_and_summed(two_articles):
    client = Client()
    participant = enrol(client, two_articles, PROLIFIC_PID="P1")
    started(client, participant)
    answer(client, participant, 1, credence_js="1", credence_copies="3", credence_pastes="1")
    answer(client, participant, 2, credence_js="1", credence_copies="0", credence_pastes="2")
    trials = list(Trial.objects.filter(participant=participant).order_by("position"))
    assert [(t.copies, t.pastes) for t in trials] == [(3, 1), (0, 2)]
    signals = fraud.participation_signals(study=two_articles)[participant.pk]
    assert (signals.copies, signals.pastes, signals.javascript) == (3, 3, True)
    assert signals.copied
    assert signals.pasted
    assert signals.flagged


def test_a_resubmitted_page_keeps_the_most_it_reported_not_the_sum(two_articles):
    client = Client()
    participant = enrol(client, two_articles, PROLIFIC_PID="P1")
    started(client, participant)
    for _ in range(2):  # a double submit sends the same counts twice
        answer(client, participant, 1, credence_js="1", credence_copies="2", credence_pastes="1")
    answer(client, participant, 1, credence_js="1", credence_copies="0", credence_pastes="0")
    trial = Trial.objects.get(participant=participant, position=1)
    assert (trial.copies, trial.pastes) == (2, 1)


GARBLED = ["abc", "-1", "1.5", "\uff11\uff12", "99999999999999", "10001", ""]


@pytest.mark.parametrize("garbled", GARBLED)
def test_garbled_counts_are_read_as_none_counted(two_articles, garbled):
    client = Client()
    participant = enrol(client, two_articles, PROLIFIC_PID="P1")
    started(client, participant)
    answer(client, participant, 1, credence_js="1", credence_copies=garbled, credence_pastes="4")
    trial = Trial.objects.get(participant=participant, position=1)
    assert (trial.copies, trial.pastes) == (0, 4)
    assert Participant.objects.get(pk=participant.pk).trials.filter(answered_at__isnull=False)


def test_answers_without_javascript_are_accepted_and_counted_as_such(two_articles):
    client = Client()
    participant = enrol(client, two_articles, PROLIFIC_PID="P1")
    assert fraud.participation_signals(study=two_articles)[participant.pk].javascript is None
    started(client, participant)
    # No script: the hidden inputs keep what the server rendered, without the marker.
    answer(client, participant, 1, credence_copies="0", credence_pastes="0", credence_js="")
    answer(client, participant, 2)
    trials = Trial.objects.filter(participant=participant)
    assert all(t.answered_at is not None for t in trials)
    assert [(t.copies, t.pastes) for t in trials] == [(None, None), (None, None)]
    signals = fraud.participation_signals(study=two_articles)[participant.pk]
    assert signals.javascript is False
    assert signals.no_javascript
    assert signals.copies is None
    assert not signals.flagged


def test_the_article_page_loads_signals_js_and_its_hidden_inputs(two_articles):
    client = Client()
    participant = enrol(client, two_articles, PROLIFIC_PID="P1")
    started(client, participant)
    html = client.get(f"/p/{participant.token}/article/1/").content.decode()
    assert re.search(r'<script src="[^"]*surveys/signals\.js" defer></script>', html)
    assert "data-signals" in html
    for name in ("credence_copies", "credence_pastes", "credence_js"):
        assert f'name="{name}"' in html
    # After a validation error the page carries the counts so far.
    response = client.post(
        f"/p/{participant.token}/article/1/",
        {"credible": "yes", "credence_js": "1", "credence_copies": "5", "credence_pastes": "2"},
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert 'name="credence_copies" value="5"' in page
    assert 'name="credence_pastes" value="2"' in page


@pytest.fixture
def free_text_once(db: None) -> Study:
    """A live study with one article, its attention check after it, and a free-text
    question on the "about you" page."""
    study = StudyFactory.create(articles_per_participant=1)
    condition = ConditionFactory.create(study=study, name="real", is_reference=True)
    condition.articles.add(RealArticleFactory.create())
    QuestionFactory.create_kreps_set(study=study)
    QuestionFactory.create(
        study=study,
        key="attention",
        text='Type "blue".',
        kind=Question.Kind.FREE_TEXT,
        scope=Question.Scope.ATTENTION_CHECK,
        expected_answer="blue",
    )
    QuestionFactory.create(
        study=study,
        key="news_habits",
        text="Where do you read news?",
        kind=Question.Kind.FREE_TEXT,
        scope=Question.Scope.PARTICIPANT,
        required=False,
    )
    return study_set_status(study=study, status=Study.Status.LIVE)


def test_pastes_on_the_pages_asked_once_are_counted_per_page_and_flag(free_text_once):
    client = Client()
    participant = enrol(client, free_text_once, PROLIFIC_PID="P1")
    started(client, participant)
    answer(client, participant, 1, credence_js="1", credence_copies="0", credence_pastes="0")
    check = f"/p/{participant.token}/check/1/"
    about = f"/p/{participant.token}/about-you/"

    def page_shows_the_script(page: str) -> None:
        html = client.get(page).content.decode()
        assert re.search(r'<script src="[^"]*surveys/signals\.js" defer></script>', html)
        assert 'name="credence_pastes" value="0"' in html

    page_shows_the_script(check)
    for _ in range(2):  # a double submit reports the same count again: kept, not summed
        response = client.post(
            check, {"attention": "blue", "credence_js": "1", "credence_pastes": "2"}
        )
        assert response.status_code == 302
    page_shows_the_script(about)
    response = client.post(about, {"news_habits": "x", "credence_js": "1", "credence_pastes": "1"})
    assert response.status_code == 302
    participant.refresh_from_db()
    assert participant.page_pastes == {"check-1": 2, "about": 1}
    signals = fraud.participation_signals(study=free_text_once)[participant.pk]
    assert (signals.pastes, signals.copies, signals.javascript) == (3, 0, True)
    assert signals.pasted
    assert signals.flagged
    assert fraud.flagged_ids(study=free_text_once) == {participant.pk}


def test_a_once_asked_page_without_a_paste_writes_nothing_and_carries_counts(free_text_once):
    client = Client()
    participant = enrol(client, free_text_once, PROLIFIC_PID="P1")
    started(client, participant)
    answer(client, participant, 1)
    # An invalid answer shows the page again with the count so far.
    response = client.post(
        f"/p/{participant.token}/check/1/",
        {"attention": "", "credence_js": "1", "credence_pastes": "4"},
    )
    assert response.status_code == 200
    assert 'name="credence_pastes" value="4"' in response.content.decode()
    # Without the script's marker nothing is counted.
    response = client.post(
        f"/p/{participant.token}/check/1/", {"attention": "blue", "credence_pastes": "4"}
    )
    assert response.status_code == 302
    participant.refresh_from_db()
    assert participant.page_pastes == {}
    assert not fraud.participation_signals(study=free_text_once)[participant.pk].pasted


def test_page_signals_parse_reads_only_bounded_counts_behind_the_marker():
    parse = fraud.page_signals_parse
    assert parse(data={"credence_copies": "3"}) is None
    assert parse(data={"credence_js": "yes", "credence_copies": "3"}) is None
    assert parse(data={"credence_js": "1", "credence_copies": "3"}) == fraud.PageSignals(3, 0)
    assert parse(data={"credence_js": "1", "credence_copies": "10000"}) == fraud.PageSignals(
        10_000, 0
    )
    assert parse(data={"credence_js": "1", "credence_pastes": "10001"}) == fraud.PageSignals(0, 0)
