"""A worker's heartbeat keeps a long chunk its own (PostgreSQL: needs a second connection)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta

import pytest

from generation import engine
from generation.models import GenerationChunk, GenerationRun
from generation.services import run_create, run_work
from tests.factories import RealArticleFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


class WaitsForHeartbeats:
    """The tiny model, returning only once the running chunk's heartbeat has moved on
    twice: a chunk that takes longer than the stale timeout."""

    def __init__(self, model: engine.LoadedModel, run: GenerationRun) -> None:
        self.model, self.identity, self.run = model, model.identity, run
        self.beats: list[object] = []

    def generate(
        self,
        requests: Sequence[engine.GenerationRequest],
        settings: engine.SamplingSettings,
        *,
        batch_size: int = 16,
    ) -> list[engine.GenerationResult]:
        chunk = GenerationChunk.objects.get(run=self.run, status="running")
        seen = {chunk.heartbeat}
        deadline = time.monotonic() + 30
        while len(seen) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
            seen.add(GenerationChunk.objects.get(pk=chunk.pk).heartbeat)
        self.beats = sorted(seen)  # type: ignore[type-var]
        return self.model.generate(requests, settings, batch_size=batch_size)


def test_the_heartbeat_advances_while_a_chunk_is_generated(tiny_model_name: str) -> None:
    run = run_create(
        model_name=tiny_model_name,
        source_articles=[RealArticleFactory.create()],
        max_new_tokens=4,
    )
    slow = WaitsForHeartbeats(engine.load_model(tiny_model_name), run)
    # Beats every fifth of the stale timeout: 0.1 s here.
    done = run_work(run=run, stale_after=timedelta(seconds=0.5), engine_loader=lambda name: slow)
    assert done.status == GenerationRun.Status.DONE
    assert len(slow.beats) == 3
    chunk = GenerationChunk.objects.get(run=run)
    assert (chunk.status, chunk.attempts) == ("done", 1)
