"""Simultaneous submissions of the comprehension page, on PostgreSQL: a double click
racing itself uses one try, never two."""

from __future__ import annotations

import pytest
from django.test import Client

from surveys.models import Participant
from tests.surveys.test_comprehension import WRONG, comprehension_study
from tests.surveys.test_concurrency import run_together

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


def test_simultaneous_submissions_of_one_try_count_once():
    study = comprehension_study(comprehension_attempts=2, screened_out_code="OUT")
    client = Client()
    client.post(f"/s/{study.slug}/", {"consent": "yes", "PROLIFIC_PID": "P1"})
    participant = Participant.objects.get(panel_pid="P1")
    base = f"/p/{participant.token}/"
    client.post(base + "instructions/")

    def submit(attempt: int) -> int:
        form = {**WRONG, "attempt": str(attempt)}
        return Client().post(base + "comprehension/", form).status_code

    assert run_together(4, lambda i: submit(1)) == [302] * 4
    participant.refresh_from_db()
    assert participant.comprehension_tries == 1
    assert participant.status == Participant.Status.IN_PROGRESS
    assert participant.responses.count() == 2

    assert run_together(4, lambda i: submit(2)) == [302] * 4
    participant.refresh_from_db()
    assert participant.comprehension_tries == 2
    assert participant.status == Participant.Status.SCREENED_OUT
    assert participant.completion_code == "OUT"
    assert participant.responses.count() == 2
