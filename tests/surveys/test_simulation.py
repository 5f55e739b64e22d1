"""The simulation bot and its management command.

The bot writes only through the participant pages, so these tests also exercise the
whole flow under load; the statistics are checked against the rates the bot was given.
"""

from __future__ import annotations

import io
import math

import pytest
from django.core.management import CommandError, call_command
from statsmodels.stats.proportion import proportion_confint

from surveys.models import Participant, Response, Study, Team, TeamMembership
from surveys.services import study_set_status
from surveys.simulation import SimulationError, simulate
from tests.factories import StudyFactory

RATES = {"real": 0.83, "generated": 0.72}


def observed_credible(study: Study) -> dict[str, tuple[int, int]]:
    """(yes, answers) per condition, straight from the Response rows of completers."""
    counts: dict[str, tuple[int, int]] = {}
    for name in RATES:
        answers = Response.objects.filter(
            participant__study=study,
            participant__status="completed",
            participant__condition__name=name,
            question__key="credible",
        )
        counts[name] = (answers.filter(value="yes").count(), answers.count())
    return counts


@pytest.mark.django_db
def test_simulated_rates_match_the_true_rates_within_wilson_intervals(live_study):
    n = 400
    summary = simulate(study=live_study, n=n, rates=RATES, seed=7, progress=False)

    assert summary.errors == []
    assert summary.completed_now == n
    assert Participant.objects.filter(study=live_study).count() == n
    assert Participant.objects.filter(study=live_study, status="completed").count() == n
    # 1 article x 4 questions + 1 attention check each, and no duplicates.
    assert Response.objects.filter(participant__study=live_study).count() == n * 5

    completers = {
        name: Participant.objects.filter(
            study=live_study, status="completed", condition__name=name
        ).count()
        for name in RATES
    }
    assert abs(completers["real"] - completers["generated"]) <= 1

    for name, (yes, total) in observed_credible(live_study).items():
        true_rate = RATES[name]
        assert total == completers[name]
        observed = yes / total
        # The true rate lies in the 95% Wilson interval of the observed proportion ...
        low, high = proportion_confint(yes, total, alpha=0.05, method="wilson")
        assert low <= true_rate <= high, (name, yes, total)
        # ... and the observed rate lies in the 95% Wilson acceptance region around the
        # true rate (the score test of H0: p = true rate does not reject).
        z = 1.959963984540054
        assert abs(observed - true_rate) <= z * math.sqrt(true_rate * (1 - true_rate) / total)
        # The summary reports what the database holds.
        tally = summary.conditions[name]
        assert (tally.credible_yes, tally.credible_answers) == (yes, total)
        assert tally.completed == completers[name]


@pytest.mark.django_db
def test_the_two_conditions_are_told_apart_by_the_rates_given(live_study):
    """Rates 0.95 vs 0.05 must show up as such: the bot answers by condition."""
    simulate(study=live_study, n=40, rates={"real": 0.95, "generated": 0.05}, progress=False)
    counts = observed_credible(live_study)
    assert counts["real"][0] / counts["real"][1] > 0.75
    assert counts["generated"][0] / counts["generated"][1] < 0.25


@pytest.mark.django_db
def test_rerun_with_the_same_seed_resumes_instead_of_duplicating(live_study):
    first = simulate(study=live_study, n=10, rates=RATES, seed=3, progress=False)
    responses = Response.objects.count()
    second = simulate(study=live_study, n=10, rates=RATES, seed=3, progress=False)
    assert (first.completed_now, second.completed_now, second.already_completed) == (10, 0, 10)
    assert Participant.objects.count() == 10
    assert Response.objects.count() == responses
    assert set(Participant.objects.values_list("panel_pid", flat=True)) == {
        f"SIM-3-{i}" for i in range(10)
    }
    simulate(study=live_study, n=12, rates=RATES, seed=4, progress=False)
    assert Participant.objects.count() == 22


@pytest.mark.django_db
def test_dropouts_and_failed_attention_checks_are_simulated_and_counted(live_study):
    summary = simulate(
        study=live_study,
        n=40,
        rates=RATES,
        seed=1,
        dropout=0.3,
        fail_attention=0.3,
        progress=False,
    )
    assert summary.errors == []
    in_progress = Participant.objects.filter(study=live_study, status="in_progress").count()
    completed = Participant.objects.filter(study=live_study, status="completed")
    assert summary.dropped_out > 0
    # Every drop-out happened after consent, so each left a participation in progress.
    assert in_progress == summary.dropped_out
    assert completed.count() == summary.completed_now == 40 - summary.dropped_out
    wrong = Response.objects.filter(participant__in=completed, question__key="attention").exclude(
        value="Blue"
    )
    assert summary.failed_attention == wrong.count() > 0


@pytest.mark.django_db
def test_test_mode_enrols_flagged_preview_participants_even_in_a_draft_study():
    study = StudyFactory.create_live()
    Study.objects.filter(pk=study.pk).update(status="draft")
    study.refresh_from_db()
    with pytest.raises(SimulationError, match="draft"):
        simulate(study=study, n=2, rates=RATES, progress=False)
    assert Participant.objects.count() == 0
    # Previews are for the study's team: a study without one is refused, clearly.
    with pytest.raises(SimulationError, match="no research team"):
        simulate(study=study, n=3, rates=RATES, progress=False, test=True)
    assert Participant.objects.count() == 0
    study.team = Team.objects.create(name="Lab")
    study.save(update_fields=["team"])
    summary = simulate(study=study, n=3, rates=RATES, progress=False, test=True)
    assert summary.completed_now == 3
    simulator = TeamMembership.objects.get(team=study.team)
    assert simulator.role == TeamMembership.Role.ANALYST
    assert not simulator.user.has_usable_password()
    assert Participant.objects.filter(is_test=True, status="completed").count() == 3
    assert Participant.objects.filter(is_test=False).count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("rates", "message"),
    [
        ({"real": 0.8, "gpt9": 0.7}, "Unknown: gpt9.*Missing: generated"),
        ({"real": 0.8}, "Missing: generated"),
        ({"real": 1.2, "generated": 0.5}, "between 0 and 1"),
    ],
)
def test_rates_must_name_every_condition_with_a_probability(live_study, rates, message):
    with pytest.raises(SimulationError, match=message):
        simulate(study=live_study, n=3, rates=rates, progress=False)
    assert Participant.objects.count() == 0


@pytest.mark.django_db
def test_command_runs_and_prints_a_summary(live_study):
    out = io.StringIO()
    call_command(
        "simulate_participants",
        live_study.slug,
        "--n",
        "6",
        "--rates",
        "real=0.83,generated=0.72",
        "--seed",
        "5",
        "--no-progress",
        stdout=out,
    )
    text = out.getvalue()
    assert "6 completed now" in text
    assert "real" in text
    assert "generated" in text
    assert Participant.objects.filter(status="completed").count() == 6


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["no-such-study", "--rates", "real=0.8,generated=0.7"], "No study"),
        (["{slug}", "--rates", "real=0.8,gpt9=0.7"], "Unknown: gpt9"),
        (["{slug}", "--rates", "real=high,generated=0.7"], "not a number"),
        (["{slug}", "--rates", "real"], "condition=probability"),
        (["{slug}", "--rates", "real=0.8,generated=0.7", "--dropout", "2"], "dropout"),
    ],
)
def test_command_rejects_bad_arguments_and_writes_nothing(live_study, args, message):
    args = [a.replace("{slug}", live_study.slug) for a in args]
    with pytest.raises(CommandError, match=message):
        call_command("simulate_participants", *args, "--n", "3", "--no-progress")
    assert Participant.objects.count() == 0


@pytest.mark.django_db
def test_command_refuses_a_closed_study(live_study):
    study_set_status(study=live_study, status="closed")
    with pytest.raises(CommandError, match="closed"):
        call_command(
            "simulate_participants",
            live_study.slug,
            "--rates",
            "real=0.8,generated=0.7",
            "--no-progress",
        )
    assert Participant.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_real_http_transport_against_a_live_server(live_server):
    study = StudyFactory.create_live(articles_per_participant=2)
    summary = simulate(
        study=study, n=4, rates=RATES, seed=2, base_url=live_server.url, progress=False
    )
    assert summary.errors == []
    assert summary.completed_now == 4
    participants = Participant.objects.filter(study=study)
    assert participants.filter(status="completed").count() == 4
    assert participants.first().user_agent.startswith("credence-simulator")
    assert Response.objects.filter(participant__study=study).count() == 4 * (2 * 4 + 1)
