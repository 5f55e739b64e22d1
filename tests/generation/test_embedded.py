"""The real embedded model (SmolLM2-135M-Instruct, GGUF) loads offline and writes text.

About 15-25 s on 2 CPU cores, most of it de-quantising the GGUF file.
Deselect with `-m "not embedded_model"`.
"""

from __future__ import annotations

import pytest

from generation.engine import GenerationRequest, SamplingSettings, load_model

LEDES = [
    "The city council approved a new budget on Monday after a long debate about school "
    "funding and road repairs.",
    "Scientists in Norway said on Tuesday that they had found a new species of frog in "
    "the rainforest of northern Brazil.",
]


@pytest.mark.embedded_model
def test_embedded_model_continues_ledes_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = load_model("embedded")
    identity = model.identity
    assert identity.label == "SmolLM2-135M-Instruct (Q4_1 GGUF, embedded offline model)"
    assert identity.param_count == 134_515_008
    assert identity.dtype == "float32"
    assert identity.weights_sha256 == {
        "SmolLM2-135M-Instruct.Q4_1.gguf": (
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
        )
    }
    requests = [GenerationRequest(prompt=lede, seed=i) for i, lede in enumerate(LEDES)]
    settings = SamplingSettings(max_new_tokens=10)
    results = model.generate(requests, settings, batch_size=2)
    assert [r.prompt for r in results] == LEDES
    for result in results:
        assert 1 <= result.new_tokens <= 10
        # A pretrained model continues English prose: mostly letters and spaces.
        letters = sum(c.isalpha() or c.isspace() for c in result.raw_text)
        assert letters >= 0.7 * len(result.raw_text) > 0
    again = model.generate(requests[:1], settings)[0]
    assert again.raw_text == results[0].raw_text
