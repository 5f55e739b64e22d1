"""The live monitor's quality and per-article numbers (``study_monitor``) and the planning
box (``studyplatform.measures.planning``, ``study_power_plan``), against numbers worked out
by hand or published."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse

from analysis import stats
from studyplatform.measures import planning, scoring
from surveys.models import Article, Participant, Question, Response, Study, Trial
from surveys.selectors import study_monitor, study_power_plan
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _participant(
    study: Study,
    condition: str,
    status: str,
    *,
    took: float | None = None,
    reads: tuple[tuple[int, float | None], ...] = (),
    attention: str | None = None,
    is_test: bool = False,
) -> Participant:
    """A participation consented at T0, completed ``took`` seconds later, that read the
    condition's n-th article (0-based) for the given seconds (None: shown, never
    answered), and answered the attention check with ``attention``."""
    cond = study.conditions.get(name=condition)
    participant = Participant.objects.create(
        study=study,
        condition=cond,
        status=status,
        is_test=is_test,
        seed=1,
        consented_at=T0,
        last_seen_at=T0,
        completed_at=None if took is None else _at(took),
    )
    articles = list(cond.articles.order_by("id"))
    for position, (index, seconds) in enumerate(reads, start=1):
        Trial.objects.create(
            participant=participant,
            article=articles[index],
            condition=cond,
            position=position,
            first_shown_at=_at(5),
            answered_at=None if seconds is None else _at(5 + seconds),
        )
    if attention is not None:
        Response.objects.create(
            participant=participant,
            question=study.questions.get(scope=Question.Scope.ATTENTION_CHECK),
            value=attention,
        )
    return participant


@pytest.fixture
def monitored(live_study: Study) -> Study:
    """Real (articles r0, r1, r2) and generated (g0, g1, g2); the check expects "Blue".

    real:  P1 completed in 100 s, read r0 30 s, check "Blue" (pass)
           P2 completed in 300 s, read r0 50 s, check "red" (fail)
           P3 completed in 200 s, read r1 20 s, no check answer
           P4 in progress, shown r1, not answered yet
           P5 screened out (no articles)
           test session: completed in 9999 s, read r0 1000 s, check "Red" -- left out
    generated: G1 completed in 60 s, read g0 10 s, check " BLUE " (pass: stripped, any case)
               G2 completed in 90 s, read g0 14 s, check "Blue"
               G3 withdrawn
    """
    done, going = Participant.Status.COMPLETED, Participant.Status.IN_PROGRESS
    _participant(live_study, "real", done, took=100, reads=((0, 30),), attention="Blue")
    _participant(live_study, "real", done, took=300, reads=((0, 50),), attention="red")
    _participant(live_study, "real", done, took=200, reads=((1, 20),))
    _participant(live_study, "real", going, reads=((1, None),))
    _participant(live_study, "real", Participant.Status.SCREENED_OUT)
    _participant(
        live_study, "real", done, took=9999, reads=((0, 1000),), attention="Red", is_test=True
    )
    _participant(live_study, "generated", done, took=60, reads=((0, 10),), attention=" BLUE ")
    _participant(live_study, "generated", done, took=90, reads=((0, 14),), attention="Blue")
    _participant(live_study, "generated", Participant.Status.WITHDRAWN)
    return live_study


def test_monitor_per_condition_by_hand(monitored):
    monitor = study_monitor(study=monitored)
    real, generated = monitor.conditions
    assert (real.name, generated.name) == ("real", "generated")
    assert real.participants is not None
    assert generated.participants is not None
    # Test sessions are left out everywhere.
    assert (real.participants.started, real.participants.completed) == (5, 3)
    assert real.participants.screened_out == 1
    assert real.participants.median_completion_s == 200.0  # median(100, 300, 200)
    assert (real.participants.checks_answered, real.participants.checks_failed) == (2, 1)
    assert real.participants.check_failure_rate == 0.5
    assert (generated.participants.started, generated.participants.completed) == (3, 2)
    assert generated.participants.screened_out == 0
    assert generated.participants.median_completion_s == 75.0  # median(60, 90)
    assert generated.participants.check_failure_rate == 0.0
    total = monitor.total
    assert (total.started, total.completed, total.screened_out) == (8, 5, 1)
    assert total.median_completion_s == 100.0  # median(60, 90, 100, 200, 300)
    assert (total.checks_answered, total.checks_failed) == (4, 1)
    assert total.check_failure_rate == 0.25


def test_monitor_counts_against_quotas_by_hand(monitored):
    """What the admin's first monitor table shows, from the same selector."""
    monitored.conditions.filter(name="real").update(quota=40)
    monitor = study_monitor(study=monitored)
    real, generated = monitor.conditions
    assert real.participants is not None
    assert generated.participants is not None
    assert (real.quota, generated.quota) == (40, None)
    assert (real.participants.in_progress, real.participants.withdrawn) == (1, 0)
    assert (generated.participants.in_progress, generated.participants.withdrawn) == (0, 1)
    assert (real.test_sessions, generated.test_sessions, monitor.test_sessions) == (1, 0, 1)
    assert (monitor.total.in_progress, monitor.total.withdrawn) == (1, 1)
    assert real.n_articles == monitored.conditions.get(name="real").articles.count()
    # Trials handed out and rated, test sessions left out: P1-P4 each got one.
    assert (real.trials_assigned, real.trials_rated) == (4, 3)
    assert (generated.trials_assigned, generated.trials_rated) == (2, 2)
    assert not monitor.within


def test_change_page_reads_the_monitor_once(admin_client, monitored, monkeypatch):
    from surveys.admin import studies

    reads = []

    def counting(*, study):
        reads.append(study.pk)
        return study_monitor(study=study)

    monkeypatch.setattr(studies, "study_monitor", counting)
    response = admin_client.get(reverse("admin:surveys_study_change", args=[monitored.pk]))
    assert response.status_code == 200
    content = response.content.decode()
    assert "<tr><td>real</td><td>3</td><td>5</td><td>1</td><td>3</td><td>—</td>" in content
    assert reads == [monitored.pk]


def test_monitor_per_article_by_hand(monitored):
    real, generated = study_monitor(study=monitored).conditions
    r0, r1, r2 = (a.article_id for a in real.articles)
    by_id = {a.article_id: a for a in real.articles}
    assert (by_id[r0].assigned, by_id[r0].started, by_id[r0].rated) == (2, 2, 2)
    assert by_id[r0].completed == 2
    assert by_id[r0].median_reading_s == 40.0  # median(30, 50); the test session's 1000 s left out
    assert (by_id[r1].assigned, by_id[r1].started, by_id[r1].rated) == (2, 2, 1)
    assert by_id[r1].completed == 1
    assert by_id[r1].median_reading_s == 20.0
    assert (by_id[r2].assigned, by_id[r2].rated, by_id[r2].median_reading_s) == (0, 0, None)
    assert [a.origin for a in real.articles] == [Article.Origin.REAL] * 3
    g0 = generated.articles[0]
    assert (g0.assigned, g0.rated, g0.completed, g0.median_reading_s) == (2, 2, 2, 12.0)
    assert [a.assigned for a in generated.articles[1:]] == [0, 0]


def test_monitor_of_an_empty_study_has_no_medians_or_rates(live_study):
    monitor = study_monitor(study=live_study)
    assert monitor.total.started == 0
    assert monitor.total.median_completion_s is None
    assert monitor.total.check_failure_rate is None
    assert all(a.median_reading_s is None for c in monitor.conditions for a in c.articles)
    assert [len(c.articles) for c in monitor.conditions] == [3, 3]


def test_change_page_shows_the_quality_and_article_tables(admin_client, monitored):
    response = admin_client.get(reverse("admin:surveys_study_change", args=[monitored.pk]))
    assert response.status_code == 200
    content = response.content.decode()
    quality = {
        name: rest
        for name, *rest in re.findall(
            r'<tr data-condition="([\w-]+)"><td>[\w-]+</td><td>(\d+)</td><td>(\d+)</td>'
            r"<td>(\d+ / \d+)</td><td>([\d.]+)</td></tr>",
            content,
        )
    }
    assert quality == {
        "real": ["1", "200", "1 / 2", "0.500"],
        "generated": ["0", "75", "0 / 2", "0.000"],
    }
    assert "median time to complete 100 s" in content
    r0 = monitored.conditions.get(name="real").articles.order_by("id").first()
    assert r0 is not None
    assert re.search(
        rf'data-article="{r0.pk}"><td>real</td><td title="real">#{r0.pk} [^<]*</td>'
        r"<td>2</td><td>2</td><td>2</td><td>2</td><td>40.0</td>",
        content,
    )


def test_within_design_monitor_counts_articles_per_condition(live_study):
    Study.objects.filter(pk=live_study.pk).update(design=Study.Design.WITHIN)
    live_study.refresh_from_db()
    monitor = study_monitor(study=live_study)
    assert [c.participants for c in monitor.conditions] == [None, None]


# --- Planning -------------------------------------------------------------------------


def test_planning_matches_r_power_prop_test_examples():
    # R documentation, ?power.prop.test (stats package), examples:
    #   power.prop.test(n = 50, p1 = .50, p2 = .75)      -> power = 0.7401659
    #   power.prop.test(p1 = .50, p2 = .75, power = .90) -> n = 76.7 (76.7069 unrounded)
    assert planning.power_two_proportions(0.5, 0.75, 50) == pytest.approx(0.7401659, abs=1e-7)
    assert planning.sample_size_two_proportions(0.5, 0.75, power=0.9) == pytest.approx(
        76.7069, abs=1e-4
    )


def test_planning_for_the_gpt2_release_rates():
    # power.prop.test(p1 = .72, p2 = .83, power = .8) gives n = 225.0403 per group (pooled
    # variance under H0, no continuity correction). Checked here independently of the
    # closed form by finding the root of R's power expression with scipy:
    #   brentq(lambda n: norm.cdf((sqrt(n)*.11 - norm.isf(.025)*sqrt(1.55*.45/2))
    #                              / sqrt(.72*.28 + .83*.17)) - .8, 2, 1e5) = 225.04033
    # (221.6, sometimes quoted for these rates, is not what this test gives: the unpooled
    # formula gives 222.3 and Cohen's h with the arcsine transform 223.2.)
    assert planning.sample_size_two_proportions(0.72, 0.83) == pytest.approx(225.04033, abs=1e-4)
    # The same root evaluated at 100 per group: power 0.4609064.
    assert planning.power_two_proportions(0.83, 0.72, 100) == pytest.approx(0.4609064, abs=1e-6)
    # analysis uses the very same functions.
    assert stats.sample_size_two_proportions is planning.sample_size_two_proportions
    assert stats.power_two_proportions is planning.power_two_proportions


@pytest.mark.parametrize("module", [planning, scoring])
def test_shared_measures_import_only_the_standard_library(module):
    # Loaded from its file, outside the project package (whose __init__ loads the Celery
    # app), so what ends up in sys.modules is what the module itself imports.
    code = (
        "import importlib.util, sys; "
        f"spec = importlib.util.spec_from_file_location('measure', {module.__file__!r}); "
        "spec.loader.exec_module(importlib.util.module_from_spec(spec)); "
        "found = {m.split('.')[0] for m in sys.modules} & {'django', 'numpy', 'scipy'}; "
        "sys.exit(', '.join(sorted(found)) or None)"
    )
    run = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert (run.returncode, run.stderr) == (0, "")


def test_study_power_plan_defaults_and_quotas(live_study):
    plan = study_power_plan(study=live_study)
    (row,) = plan.rows
    assert (row.condition, row.reference, row.p_reference, row.p_condition) == (
        "generated",
        "real",
        0.83,
        0.72,
    )
    assert row.n_needed == 226  # ceil(225.04)
    assert row.quota_power is None  # no quotas
    live_study.conditions.update(quota=100)
    (row,) = study_power_plan(study=live_study).rows
    assert (row.quota_reference, row.quota_condition) == (100, 100)
    assert row.quota_power == pytest.approx(0.4609064, abs=1e-6)
    (row,) = study_power_plan(study=live_study, rates={"generated": 0.83}).rows
    assert row.n_needed is None
    assert row.quota_power is None


def test_study_power_plan_without_reference_has_no_rows():
    study = StudyFactory.create()
    assert study_power_plan(study=study).rows == ()
    assert study_power_plan(study=study).reference is None


def _planning_rows(content: str) -> list[tuple[str, str, str]]:
    return re.findall(
        r'<tr data-condition="([\w-]+)"><td>[\w-]+ vs [\w-]+</td>\s*<td>([\d.]+ vs [\d.]+)</td>'
        r"\s*<td>(\d+)</td>",
        content,
    )


def test_change_page_planning_box_default_and_typed_rates(admin_client, live_study):
    url = reverse("admin:surveys_study_change", args=[live_study.pk])
    content = admin_client.get(url).content.decode()
    assert _planning_rows(content) == [("generated", "0.72 vs 0.83", "226")]
    assert "needs\n  226 per condition" in content
    # R: power.prop.test(p1 = .50, p2 = .75, power = .90) -> n = 76.7, so 77 each.
    response = admin_client.get(url, {"rate_real": "0.5", "rate_generated": "0.75", "power": "0.9"})
    assert response.status_code == 200
    assert _planning_rows(response.content.decode()) == [("generated", "0.75 vs 0.5", "77")]


def test_change_page_planning_box_refuses_bad_rates(admin_client, live_study):
    url = reverse("admin:surveys_study_change", args=[live_study.pk])
    response = admin_client.get(url, {"rate_real": "1.5", "rate_generated": "abc"})
    assert response.status_code == 200
    content = response.content.decode()
    assert "Enter a number strictly between 0 and 1, not 1.5." in content
    assert "Enter a number." in content
    assert _planning_rows(content) == [("generated", "0.72 vs 0.83", "226")]
