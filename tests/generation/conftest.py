"""A tiny GPT-2 built in the test session, so the real loading path runs in tests.

The tokenizer is a byte-level BPE trained on the bundled Wikinews articles and the model
a 2-layer GPT-2 with random weights; both are saved with ``save_pretrained`` and loaded
back by the engine with ``from_pretrained(dir)``, as a downloaded GPT-2 would be.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from surveys.models import Article
from tests.factories import RealArticleFactory

ARTICLES = Path(__file__).resolve().parents[2] / "data" / "wikinews_articles.jsonl"
EOS = "<|endoftext|>"


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    with ARTICLES.open(encoding="utf-8") as handle:
        bodies = [json.loads(line)["body"] for line, _ in zip(handle, range(40), strict=False)]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        bodies, vocab_size=500, min_frequency=2, special_tokens=[EOS], show_progress=False
    )
    tokenizer = GPT2TokenizerFast(
        tokenizer_object=bpe._tokenizer, eos_token=EOS, bos_token=EOS, unk_token=EOS
    )
    torch.manual_seed(1234)
    config = GPT2Config(
        n_layer=2,
        n_head=2,
        n_embd=32,
        n_positions=256,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.eos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = GPT2LMHeadModel(config)
    folder = tmp_path_factory.mktemp("tiny-gpt2")
    tokenizer.save_pretrained(folder)
    model.save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_model_name(tiny_model_dir: Path) -> str:
    """The tiny model's directory, given as a run's model name."""
    return str(tiny_model_dir)


@pytest.fixture
def ledes() -> list[str]:
    with ARTICLES.open(encoding="utf-8") as handle:
        rows = [json.loads(line) for line, _ in zip(handle, range(6), strict=False)]
    return [row["body"].split("\n\n", 1)[0] for row in rows]


@pytest.fixture
def source_articles(db: None) -> list[Article]:
    """Three real articles with ledes of different lengths."""
    return [
        RealArticleFactory.create(
            body="The council met on Monday.\n\nIt approved the plan.",
        ),
        RealArticleFactory.create(
            body="Scientists in Oslo said on Tuesday that they had found a new species of "
            "frog in the forests of northern Brazil, after a survey that lasted two years."
            "\n\nThe frog is green.",
        ),
        RealArticleFactory.create(
            body="Voters in the region go to the polls on Sunday to elect a new governor."
            "\n\nTurnout is expected to be high.",
        ),
    ]


@pytest.fixture(autouse=True)
def _one_generation_process(settings: Any) -> None:
    """Runs execute in the test process: a pool of worker processes costs seconds to
    start. tests/generation/test_services_speed.py asks for workers explicitly."""
    settings.CREDENCE_GENERATION_WORKERS = 1
