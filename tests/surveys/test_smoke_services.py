from __future__ import annotations

import pytest

from surveys.models import Participant
from surveys.selectors import participant_next_step
from surveys.services import PanelIds, participant_enroll


@pytest.mark.django_db
def test_enrolling_the_same_panel_id_twice_returns_one_participation(live_study):
    panel = PanelIds(panel="prolific", pid="P1", study_id="S", session_id="X")
    first = participant_enroll(study=live_study, panel=panel)
    second = participant_enroll(study=live_study, panel=panel)
    assert first.pk == second.pk
    assert Participant.objects.filter(study=live_study).count() == 1
    assert first.trials.count() == 1
    assert participant_next_step(participant=first).name == "instructions"
