"""Within-subjects designs: every participant reads articles of every condition, never
two versions of one story, least-exposed articles first, in an order set by their seed."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from surveys.models import Article, Participant, Response, Study, Trial, WithdrawalLog
from surveys.selectors import study_articles_per_participant
from surveys.services import (
    PanelIds,
    StudyFullError,
    participant_enroll,
    participant_withdraw,
    study_design_hash,
    study_set_status,
    study_sync_articles_per_participant,
    study_validate_design,
    within_articles_pick,
)
from surveys.services.enrolment import _participant_seed
from surveys.simulation import simulate
from tests.factories import StudyFactory
from tests.surveys.builders import story_of, within_study

pytestmark = pytest.mark.django_db


def enrol(study: Study, pid: str) -> Participant:
    return participant_enroll(study=study, panel=PanelIds(panel="prolific", pid=pid))


def drawn(participant: Participant) -> list[tuple[str, Article]]:
    return [
        (t.condition.name, t.article)
        for t in participant.trials.select_related("condition", "article").order_by("position")
    ]


def test_each_participant_reads_per_participant_articles_of_every_condition():
    study = within_study(real_each=3, generated_each=2)
    assert study.articles_per_participant == 5  # derived when launched
    participant = enrol(study, "P1")
    assert participant.condition is None
    pairs = drawn(participant)
    assert Counter(name for name, _ in pairs) == {"real": 3, "generated": 2}
    assert [t.position for t in participant.trials.order_by("position")] == [1, 2, 3, 4, 5]
    for name, article in pairs:
        expected_origin = "real" if name == "real" else "generated"
        assert article.origin == expected_origin
        assert article.conditions.filter(study=study, name=name).exists()


def test_no_participant_reads_two_versions_of_one_story():
    study = within_study(stories=6, real_each=3, generated_each=3)
    for i in range(12):
        stories = [story_of(a) for _, a in drawn(enrol(study, f"P{i}"))]
        # 6 articles from 6 stories: each story exactly once, as real or as generated.
        assert len(stories) == len(set(stories)) == 6


def test_a_scarce_condition_still_gets_its_stories():
    """Generated versions exist for 4 of 10 stories only: a pick that took real articles
    first could leave the generated condition short; the assignment must not."""
    study = within_study(stories=10, generated_stories=4, real_each=4, generated_each=4)
    for i in range(15):
        pairs = drawn(enrol(study, f"P{i}"))
        assert Counter(name for name, _ in pairs) == {"real": 4, "generated": 4}
        stories = [story_of(a) for _, a in pairs]
        assert len(set(stories)) == 8
    # Every participant needs all 4 generated stories, so the real forms of those stories
    # can never be shown; the other 6 real articles share the real reads evenly.
    real = study.conditions.get(name="real")
    shown = Counter(Trial.objects.filter(condition=real).values_list("article_id", flat=True))
    free = [a.pk for a in real.articles.filter(generated_versions__isnull=True)]
    assert len(free) == 6
    assert set(shown) == set(free)
    assert max(shown.values()) - min(shown.values()) <= 1


def test_order_is_reproducible_from_the_participants_seed():
    study = within_study()
    seed = _participant_seed(study, 0)
    first = within_articles_pick(study=study, rng=random.Random(seed))
    again = within_articles_pick(study=study, rng=random.Random(seed))
    other = within_articles_pick(study=study, rng=random.Random(seed + 1))
    assert [(c.pk, a.pk) for c, a in first] == [(c.pk, a.pk) for c, a in again]
    assert [(c.pk, a.pk) for c, a in first] != [(c.pk, a.pk) for c, a in other]
    # The first participant is given exactly the pick their seed makes.
    participant = enrol(study, "P1")
    assert participant.seed == seed
    assert [(t.condition_id, t.article_id) for t in participant.trials.order_by("position")] == [
        (c.pk, a.pk) for c, a in first
    ]
    # Conditions are mixed, not shown in blocks, for at least one of a few participants.
    orders = [[name for name, _ in drawn(enrol(study, f"Q{i}"))] for i in range(5)]
    assert any(order != sorted(order) and order != sorted(order, reverse=True) for order in orders)


@pytest.mark.parametrize(
    ("stories", "generated_stories", "each", "spread"),
    [
        # Every story in both forms (the usual design): within one.
        (10, None, 3, 1),
        (7, None, 2, 1),
        (12, None, 5, 1),
        # Generated versions of 6 of 10 stories only: the participant being assigned
        # may have to trade a real read against a generated one, so within two.
        (10, 6, 3, 2),
    ],
)
def test_item_exposure_is_balanced_and_stories_alternate_forms(
    stories, generated_stories, each, spread
):
    study = within_study(
        stories=stories, generated_stories=generated_stories, real_each=each, generated_each=each
    )
    for i in range(40):
        enrol(study, f"P{i}")
    for condition in study.conditions.all():
        exposure = Counter(
            Trial.objects.filter(condition=condition).values_list("article_id", flat=True)
        )
        counts = [exposure.get(a.pk, 0) for a in condition.articles.all()]
        assert max(counts) - min(counts) <= spread, (condition.name, sorted(counts))
        assert sum(counts) == 40 * each
    # Counterbalancing: a story with a generated version is read as real by some
    # participants and as generated by others.
    generated = study.conditions.get(name="generated")
    for article in generated.articles.all():
        as_real = Trial.objects.filter(article_id=article.source_article_id).count()
        as_generated = Trial.objects.filter(article=article).count()
        assert as_real > 0
        assert as_generated > 0


def test_design_validation_names_each_within_problem_and_launch_writes_nothing():
    study = within_study(stories=3, real_each=0, generated_each=5, launch=False)
    study.conditions.filter(name="generated").update(quota=10)
    with pytest.raises(ValidationError) as error:
        study_validate_design(study=study)
    text = " ".join(error.value.messages)
    assert 'Condition "real": set how many' in text
    assert 'Condition "generated" has 3 article(s); each participant reads 5' in text
    assert "quotas apply to between-subjects designs only" in text
    with pytest.raises(ValidationError):
        study_set_status(study=study, status=Study.Status.LIVE)
    study.refresh_from_db()
    assert (study.status, study.design_hash) == ("draft", "")


def test_design_validation_counts_distinct_stories():
    # 3 stories, each real and generated: 2 + 2 articles would need 4 stories.
    study = within_study(stories=3, real_each=2, generated_each=2, launch=False)
    with pytest.raises(ValidationError, match="allow only 3"):
        study_validate_design(study=study)
    study.conditions.filter(name="generated").update(per_participant=1)
    study_validate_design(study=study)  # 2 + 1 from 3 stories is fine


def test_enrolment_refuses_when_articles_ran_short_after_launch():
    study = within_study(stories=4, real_each=2, generated_each=2)
    study.conditions.get(name="generated").articles.clear()
    with pytest.raises(StudyFullError):
        enrol(study, "P1")
    assert Participant.objects.count() == 0
    assert Trial.objects.count() == 0


def test_design_hash_includes_the_design_and_per_participant_counts():
    study = within_study(launch=False)
    within_hash = study_design_hash(study=study)
    study.conditions.filter(name="real").update(per_participant=4)
    assert study_design_hash(study=study) != within_hash
    study.design = Study.Design.BETWEEN
    study.save()
    between_hash = study_design_hash(study=study)
    assert between_hash != within_hash
    # Unused in between-subjects designs, so not part of their hash (which therefore
    # stays what it was before designs existed).
    study.conditions.filter(name="real").update(per_participant=1)
    assert study_design_hash(study=study) == between_hash


def test_between_designs_record_the_participants_condition_on_every_trial():
    study = StudyFactory.create_live(articles_per_participant=2)
    participant = enrol(study, "P1")
    assert participant.condition is not None
    assert {t.condition_id for t in participant.trials.all()} == {participant.condition_id}


def test_within_participant_walks_the_pages_and_withdraws():
    study = within_study(real_each=2, generated_each=1)
    client = Client()
    response = client.post(f"/s/{study.slug}/", {"consent": "yes", "PROLIFIC_PID": "P1"})
    assert response.status_code == 302
    participant = Participant.objects.get()
    base = f"/p/{participant.token}/"
    page = client.get(base + "instructions/")
    assert page.status_code == 200
    assert "You will read 3 articles." in page.content.decode()
    client.post(base + "instructions/")
    good = {"credible": "yes", "believable": "3", "accurate": "2", "clear": "4"}
    for position in (1, 2, 3):
        assert client.post(base + f"article/{position}/", good).status_code == 302
    client.post(base + "check/", {"attention": "Blue"})
    assert client.post(base + "finish/").status_code == 302
    participant.refresh_from_db()
    assert participant.status == "completed"
    assert Response.objects.filter(participant=participant).count() == 3 * 4 + 1
    articles = [a.pk for _, a in drawn(participant)]
    log = participant_withdraw(participant=participant)
    assert WithdrawalLog.objects.get() == log
    assert (log.condition_name, log.article_ids) == ("", articles)
    debrief = client.get(base + "debrief/")
    assert debrief.status_code == 200


def test_simulated_participants_answer_by_the_condition_of_each_article():
    study = within_study(stories=8, real_each=2, generated_each=2)
    summary = simulate(
        study=study, n=30, rates={"real": 0.95, "generated": 0.05}, seed=3, progress=False
    )
    assert summary.errors == []
    assert summary.completed_now == 30
    for name in ("real", "generated"):
        tally = summary.conditions[name]
        # Everyone reads both conditions.
        assert (tally.participants, tally.completed) == (30, 30)
        answers = Response.objects.filter(question__key="credible", trial__condition__name=name)
        assert answers.count() == tally.credible_answers == 60
        assert answers.filter(value="yes").count() == tally.credible_yes
    assert summary.conditions["real"].observed_rate > 0.8
    assert summary.conditions["generated"].observed_rate < 0.2


def test_admin_monitor_counts_within_participants_once(admin_client):
    study = within_study(real_each=2, generated_each=1)
    enrol(study, "P1")
    enrol(study, "P2")
    response = admin_client.get(f"/admin/surveys/study/{study.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Within subjects: 2 started, 2 in progress, 0 completed" in html
    assert "<td>real</td><td>2</td><td>10</td><td>4</td><td>0</td>" in html
    assert "<td>generated</td><td>1</td><td>10</td><td>2</td><td>0</td>" in html


def test_articles_per_participant_is_derived_for_within_designs_only():
    study = within_study(real_each=2, generated_each=3, launch=False)
    assert study_articles_per_participant(study=study) == 5
    study_sync_articles_per_participant(study=study)
    study.refresh_from_db()
    assert study.articles_per_participant == 5
    between = StudyFactory.create_live(articles_per_participant=2)
    between.conditions.update(per_participant=4)
    study_sync_articles_per_participant(study=between)
    between.refresh_from_db()
    assert study_articles_per_participant(study=between) == between.articles_per_participant == 2


def test_admin_saves_a_within_design_and_derives_the_count(admin_client):
    study = within_study(real_each=1, generated_each=1, launch=False)
    conditions = list(study.conditions.order_by("id"))
    data = {
        "title": study.title,
        "slug": study.slug,
        "design": "within",
        "articles_per_participant": 1,
        "seed": study.seed,
        "consent_text": study.consent_text,
        "instructions_text": study.instructions_text,
        "debrief_text": study.debrief_text,
        "multiple_comparisons": study.multiple_comparisons,
        "reservation_minutes": study.reservation_minutes,
        "completion_url": study.completion_url,
        "conditions-TOTAL_FORMS": 2,
        "conditions-INITIAL_FORMS": 2,
        "conditions-MIN_NUM_FORMS": 0,
        "conditions-MAX_NUM_FORMS": 1000,
        "questions-TOTAL_FORMS": 0,
        "questions-INITIAL_FORMS": 0,
        "questions-MIN_NUM_FORMS": 0,
        "questions-MAX_NUM_FORMS": 1000,
        "exclusion_rules-TOTAL_FORMS": 0,
        "exclusion_rules-INITIAL_FORMS": 0,
        "exclusion_rules-MIN_NUM_FORMS": 0,
        "exclusion_rules-MAX_NUM_FORMS": 1000,
        "_save": "Save",
    }
    for i, (condition, count) in enumerate(zip(conditions, (4, 2), strict=True)):
        data.update(
            {
                f"conditions-{i}-id": condition.pk,
                f"conditions-{i}-study": study.pk,
                f"conditions-{i}-name": condition.name,
                f"conditions-{i}-label": condition.label,
                f"conditions-{i}-is_reference": "on" if condition.is_reference else "",
                f"conditions-{i}-per_participant": count,
            }
        )
    response = admin_client.post(f"/admin/surveys/study/{study.pk}/change/", data)
    assert response.status_code == 302
    study.refresh_from_db()
    assert study.articles_per_participant == 6
    assert dict(study.conditions.values_list("name", "per_participant")) == {
        "real": 4,
        "generated": 2,
    }
