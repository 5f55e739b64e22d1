"""Presentation manipulations: a condition's masthead and notice are the only differences
between the article pages of two conditions."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from surveys.models import Condition, Participant, Study
from surveys.services import study_set_status
from tests.factories import ConditionFactory, QuestionFactory, RealArticleFactory, StudyFactory
from tests.surveys.builders import within_study

pytestmark = pytest.mark.django_db

BRANDING = "The Daily Ledger"
DISCLAIMER = "This article was written by an AI system."


def enrol(client: Client, study: Study, pid: str) -> tuple[Participant, str]:
    response = client.post(f"/s/{study.slug}/", {"consent": "yes", "PROLIFIC_PID": pid})
    assert response.status_code == 302
    participant = Participant.objects.get(study=study, panel_pid=pid)
    client.post(f"/p/{participant.token}/instructions/")
    return participant, f"/p/{participant.token}/"


@pytest.fixture
def same_article_study() -> Study:
    """Two conditions over the same single article: one plain, one with a masthead and
    a notice."""
    study = StudyFactory.create()
    article = RealArticleFactory.create()
    plain = ConditionFactory.create(study=study, name="plain", label="Plain", is_reference=True)
    framed = ConditionFactory.create(
        study=study, name="framed", label="Framed", branding=BRANDING, disclaimer=DISCLAIMER
    )
    plain.articles.add(article)
    framed.articles.add(article)
    QuestionFactory.create_kreps_set(study=study)
    return study_set_status(study=study, status=Study.Status.LIVE)


def _normalised(html: str, participant: Participant) -> str:
    """The page without what differs between any two participants' pages."""
    html = html.replace(str(participant.token), "TOKEN")
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "CSRF", html)


def test_two_conditions_pages_differ_only_in_masthead_and_notice(same_article_study):
    pages: dict[str, str] = {}
    for pid in ("A", "B"):
        client = Client()
        participant, base = enrol(client, same_article_study, pid)
        response = client.get(base + "article/1/")
        assert response.status_code == 200
        assert participant.condition is not None
        pages[participant.condition.name] = _normalised(response.content.decode(), participant)
    assert set(pages) == {"plain", "framed"}  # balanced assignment: one each
    framed, plain = pages["framed"], pages["plain"]
    assert framed != plain
    notice = re.search(r'\n?<div class="disclaimer" role="note"[^>]*>[^<]*</div>\n?', framed)
    masthead = re.search(r'<header class="masthead"[^>]*>.*?</header>', framed)
    assert notice is not None
    assert masthead is not None
    assert DISCLAIMER in notice.group(0)
    assert BRANDING in masthead.group(0)
    without = framed.replace(notice.group(0), "\n").replace(masthead.group(0), "")
    assert re.sub(r"\s+", " ", without) == re.sub(r"\s+", " ", plain)
    assert BRANDING not in plain
    assert DISCLAIMER not in plain
    assert 'role="note"' not in plain


def test_the_notice_is_a_labelled_note_above_the_article(same_article_study):
    Condition.objects.filter(study=same_article_study).update(
        branding="", disclaimer="Written by a machine.\nNot real news."
    )
    client = Client()
    _, base = enrol(client, same_article_study, "N1")
    html = client.get(base + "article/1/").content.decode()
    assert (
        '<div class="disclaimer" role="note" aria-label="Notice about this article" '
        "data-disclaimer>Written by a machine.<br>Not real news.</div>"
    ) in html
    assert html.index("data-disclaimer") < html.index('<article class="news">')
    assert "data-masthead" not in html


def test_within_subjects_pages_show_each_trial_conditions_manipulation():
    study = within_study(stories=6, real_each=2, generated_each=2, launch=False)
    Condition.objects.filter(study=study, name="generated").update(disclaimer=DISCLAIMER)
    Condition.objects.filter(study=study, name="real").update(branding=BRANDING)
    study = study_set_status(study=study, status=Study.Status.LIVE)
    client = Client()
    participant, base = enrol(client, study, "W1")
    seen = set()
    for trial in participant.trials.select_related("condition").order_by("position"):
        html = client.get(base + f"article/{trial.position}/").content.decode()
        assert trial.condition is not None
        if trial.condition.name == "generated":
            assert DISCLAIMER in html
            assert BRANDING not in html
        else:
            assert BRANDING in html
            assert DISCLAIMER not in html
        seen.add(trial.condition.name)
        client.post(
            base + f"article/{trial.position}/",
            {"credible": "yes", "believable": "3", "accurate": "2", "clear": "4"},
        )
    assert seen == {"real", "generated"}
