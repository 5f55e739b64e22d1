"""Fast-DetectGPT and Binoculars stored per article x scorer (``generation.scoring``) and
by ``manage.py score_articles``: what is stored, and why Binoculars is missing when it is."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from generation import detectors, engine
from generation.scoring import article_score, binoculars_plan
from surveys.models import ArticleScore
from tests.factories import GeneratedArticleFactory, StudyFactory

pytestmark = pytest.mark.django_db


def _save_gpt2(folder: Path, *, tokenizer_dir: Path, seed: int, extra_token: str = "") -> Path:
    import torch
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    if extra_token:
        tokenizer.add_tokens([extra_token])
    torch.manual_seed(seed)
    config = GPT2Config(
        n_layer=1,
        n_head=2,
        n_embd=32,
        n_positions=128,
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    tokenizer.save_pretrained(folder)
    GPT2LMHeadModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def sibling_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another small GPT-2 with the tiny model's tokenizer: a valid Binoculars performer."""
    return _save_gpt2(tmp_path_factory.mktemp("sibling"), tokenizer_dir=tiny_model_dir, seed=99)


@pytest.fixture(scope="module")
def stranger_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small GPT-2 whose tokenizer has one more token: not a valid performer."""
    return _save_gpt2(
        tmp_path_factory.mktemp("stranger"), tokenizer_dir=tiny_model_dir, seed=5, extra_token="zq"
    )


def test_fast_detectgpt_is_stored_and_binoculars_says_why_it_is_missing(
    tiny_model_name: str,
) -> None:
    article = GeneratedArticleFactory.create()
    score = article_score(article=article, model_name=tiny_model_name)
    score.refresh_from_db()

    loaded = engine.load_model(tiny_model_name)
    ids = loaded.tokenizer(article.body.strip(), add_special_tokens=False)["input_ids"]
    expected = detectors.fast_detectgpt(
        detectors.token_scores(
            ids,
            loaded.model,
            bos_id=loaded.tokenizer.bos_token_id,
            context_length=loaded.identity.context_length,
        )
    )
    assert score.fast_detectgpt == pytest.approx(expected, rel=1e-6)
    assert score.binoculars is None
    assert score.binoculars_performer == {}
    assert "no second model sharing the tokenizer" in score.unavailable["binoculars"]
    assert "fast_detectgpt" not in score.unavailable
    assert score.scorer_version == detectors.SCORER_VERSION


def test_binoculars_is_stored_with_a_performer_sharing_the_tokenizer(
    tiny_model_name: str, sibling_dir: Path
) -> None:
    article = GeneratedArticleFactory.create()
    plan = binoculars_plan(model_name=tiny_model_name, performer=str(sibling_dir))
    assert plan.reason == ""
    score = article_score(article=article, model_name=tiny_model_name, binoculars=plan)
    score.refresh_from_db()

    observer = engine.load_model(tiny_model_name)
    performer = engine.load_model(str(sibling_dir))
    ids = observer.tokenizer(article.body.strip(), add_special_tokens=False)["input_ids"]
    logprobs, cross = detectors.binoculars_tokens(
        ids,
        observer.model,
        performer.model,
        bos_id=observer.tokenizer.bos_token_id,
        context_length=128,  # the shorter of the two contexts (256 and 128)
    )
    assert score.binoculars == pytest.approx(detectors.binoculars(logprobs, cross).score, rel=1e-6)
    assert score.binoculars_performer["source"] == str(sibling_dir.resolve())
    assert score.binoculars_performer["param_count"] > 0
    assert score.unavailable == {}


def test_a_performer_with_another_tokenizer_is_refused_with_the_reason(
    tiny_model_name: str, stranger_dir: Path
) -> None:
    plan = binoculars_plan(model_name=tiny_model_name, performer=str(stranger_dir))
    assert plan.performer is None
    assert "different vocabularies" in plan.reason
    score = article_score(
        article=GeneratedArticleFactory.create(), model_name=tiny_model_name, binoculars=plan
    )
    assert score.binoculars is None
    assert "different vocabularies" in score.unavailable["binoculars"]


def test_a_performer_that_cannot_load_is_a_reason_not_an_error(tiny_model_name: str) -> None:
    missing = binoculars_plan(model_name=tiny_model_name, performer="gpt5")
    assert 'the performer "gpt5"' in missing.reason
    assert "cannot be loaded here" in missing.reason
    itself = binoculars_plan(model_name=tiny_model_name, performer=tiny_model_name)
    assert "another model than the scorer" in itself.reason


def test_the_embedded_model_s_sibling_is_never_downloaded_and_its_absence_explained() -> None:
    asked: list[str] = []

    def loader(name: str) -> object:
        asked.append(name)
        return object()

    plan = binoculars_plan(model_name=engine.EMBEDDED, engine_loader=loader)
    assert plan.performer is None
    assert plan.reason == (
        'the performer "HuggingFaceTB/SmolLM2-135M" (sharing the tokenizer of "embedded") '
        "has no local copy here (CREDENCE_MODEL_DIR or the Hugging Face cache); name one "
        "with score_articles --performer"
    )
    assert asked == []  # nothing loaded, so nothing fetched


def test_a_sibling_saved_under_the_model_dir_is_used(
    tiny_model_dir: Path, sibling_dir: Path, settings: Any
) -> None:
    import shutil

    base = sibling_dir.parent / "models"
    shutil.copytree(sibling_dir, base / "HuggingFaceTB" / "SmolLM2-135M", dirs_exist_ok=True)
    settings.CREDENCE_MODEL_DIR = str(base)
    loaded: dict[str, object] = {
        engine.EMBEDDED: engine.load_model(str(tiny_model_dir)),
        "HuggingFaceTB/SmolLM2-135M": engine.load_model(str(sibling_dir)),
    }
    plan = binoculars_plan(model_name=engine.EMBEDDED, engine_loader=loaded.__getitem__)
    assert plan.reason == ""
    assert plan.performer is loaded["HuggingFaceTB/SmolLM2-135M"]


def test_the_command_stores_binoculars_with_the_named_performer(
    tiny_model_name: str, sibling_dir: Path
) -> None:
    study = StudyFactory.create_live(articles_per_condition=1)
    out = StringIO()
    call_command(
        "score_articles",
        study.slug,
        "--model",
        tiny_model_name,
        "--performer",
        str(sibling_dir),
        stdout=out,
    )
    scores = list(ArticleScore.objects.all())
    assert len(scores) == 2
    assert all(s.binoculars is not None and s.fast_detectgpt is not None for s in scores)
    assert "Binoculars left empty" not in out.getvalue()
    assert "Fast-DetectGPT" in out.getvalue()

    out = StringIO()
    call_command("score_articles", study.slug, "--model", tiny_model_name, stdout=out)
    assert "Binoculars left empty: no second model sharing the tokenizer" in out.getvalue()
    assert all(s.binoculars is None for s in ArticleScore.objects.all())
