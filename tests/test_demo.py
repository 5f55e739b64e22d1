"""The demo command, end to end on the real embedded model (few articles, short texts)."""

from __future__ import annotations

import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from generation.models import GenerationRun
from surveys.models import Article, Participant, Study


@pytest.mark.embedded_model
@pytest.mark.django_db(transaction=True)
def test_demo_builds_a_live_study_with_simulated_results_and_reuses_it_on_rerun():
    out = StringIO()
    options = {"articles": 4, "max_new_tokens": 48, "participants": 40, "no_serve": True}
    call_command("demo", stdout=out, **options)
    text = out.getvalue()

    study = Study.objects.get(slug="demo")
    assert study.status == Study.Status.LIVE
    assert Article.objects.real().count() == 312
    generated = Article.objects.generated()
    assert 1 <= generated.count() <= 4
    assert set(study.conditions.values_list("name", flat=True)) == {"real", "generated"}
    assert study.conditions.get(name="generated").articles.count() == generated.count()
    completed = Participant.objects.filter(study=study, status="completed").count()
    assert completed == 40
    # The printed analysis names both conditions, and the links and login are printed.
    assert re.search(r"real .*n=", text) or "real" in text
    assert "/s/demo/?PROLIFIC_PID=" in text
    assert re.search(r"password: \S+", text)
    run = GenerationRun.objects.get()
    assert run.status == GenerationRun.Status.DONE
    assert "SmolLM2" in run.model_identity["label"]

    # Running the demo again generates nothing new and does not duplicate participants.
    call_command("demo", stdout=StringIO(), **options)
    assert GenerationRun.objects.count() == 1
    assert Article.objects.generated().count() == generated.count()
    assert Participant.objects.filter(study=study).count() == 40


@pytest.mark.django_db
def test_demo_with_an_unknown_model_fails_with_a_clear_message():
    with pytest.raises(CommandError, match="nonexistent-model"):
        call_command(
            "demo", model="nonexistent-model", articles=2, no_serve=True, stdout=StringIO()
        )


@pytest.mark.django_db
def test_demo_with_malformed_rates_fails_before_generating_anything():
    with pytest.raises(CommandError, match="Bad rate"):
        call_command("demo", rates="real=high", no_serve=True, stdout=StringIO())
    assert not GenerationRun.objects.exists()
    assert not Article.objects.exists()
