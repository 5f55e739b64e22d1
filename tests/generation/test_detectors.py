"""Detector scores against values computed by hand on tiny GPT-2 models."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from generation.detectors import score_text, summarise, token_scores

STEP = 0.1  # logit of token v is -STEP * v in the context-free model


def _random_gpt2(seed: int = 7, vocab: int = 50) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=32, vocab_size=vocab)
    return GPT2LMHeadModel(config).eval()


def _context_free_gpt2(vocab: int = 3000) -> GPT2LMHeadModel:
    """Whatever the context, the next-token logits are -STEP * v: the final layer norm's
    weight is zero, so its output is its bias e_0, and the tied output matrix maps e_0 to
    the first column of the embeddings. Token v then has rank v exactly."""
    config = GPT2Config(n_layer=1, n_head=1, n_embd=4, n_positions=16, vocab_size=vocab)
    model = GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        model.transformer.ln_f.weight.zero_()
        model.transformer.ln_f.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0]))
        model.transformer.wte.weight.zero_()
        model.transformer.wte.weight[:, 0] = -STEP * torch.arange(vocab, dtype=torch.float32)
    return model


def test_log_probabilities_and_ranks_match_a_manual_softmax_position_by_position() -> None:
    model = _random_gpt2()
    ids = [3, 17, 42, 8]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    expected_logprobs, expected_ranks = [], []
    for position in range(1, len(ids)):
        row = logits[position - 1]
        log_normaliser = math.log(sum(math.exp(float(v)) for v in row))
        expected_logprobs.append(float(row[ids[position]]) - log_normaliser)
        expected_ranks.append(sum(1 for v in row if float(v) > float(row[ids[position]])))

    got = token_scores(ids, model)

    assert got.logprobs == pytest.approx(expected_logprobs, abs=1e-5)
    assert got.ranks == expected_ranks
    summary = summarise(got)
    mean = sum(expected_logprobs) / 3
    assert summary.tokens == 3
    assert summary.mean_logprob == pytest.approx(mean, abs=1e-5)
    assert summary.perplexity == pytest.approx(math.exp(-mean), rel=1e-5)


def test_known_ranks_give_the_gltr_shares_and_closed_form_log_probabilities() -> None:
    vocab = 3000
    model = _context_free_gpt2(vocab)
    ids = [1, 5, 50, 500, 2000]  # first token is context only; ranks 5, 50, 500, 2000

    got = token_scores(ids, model)

    assert got.ranks == [5, 50, 500, 2000]
    # log p(v) = -STEP v - log sum_u exp(-STEP u), a geometric series.
    log_z = math.log((1 - math.exp(-STEP * vocab)) / (1 - math.exp(-STEP)))
    assert got.logprobs == pytest.approx([-STEP * v - log_z for v in ids[1:]], abs=1e-4)
    summary = summarise(got)
    assert (summary.rank_top10, summary.rank_top100, summary.rank_top1000) == (0.25, 0.5, 0.75)
    mean = -STEP * (5 + 50 + 500 + 2000) / 4 - log_z
    assert summary.mean_logprob == pytest.approx(mean, abs=1e-4)
    assert summary.perplexity == pytest.approx(math.exp(-mean), rel=1e-4)


def test_a_beginning_of_text_token_makes_the_first_token_scored() -> None:
    got = token_scores([7, 0], _context_free_gpt2(), bos_id=3)
    assert got.ranks == [7, 0]


def test_long_texts_are_scored_in_windows_with_every_token_once() -> None:
    model = _random_gpt2()
    ids = [(i * 7) % 50 for i in range(30)]
    whole = token_scores(ids, model, context_length=32)
    windowed = token_scores(ids, model, context_length=8)
    assert len(windowed.logprobs) == len(whole.logprobs) == 29
    # The first window sees the same context as the whole pass.
    assert windowed.logprobs[:7] == pytest.approx(whole.logprobs[:7], abs=1e-5)
    # Context-free model: windowing cannot change anything.
    free = _context_free_gpt2()
    assert token_scores(ids, free, context_length=8).ranks == ids[1:]


def test_a_text_with_nothing_to_score_is_refused() -> None:
    with pytest.raises(ValueError, match="no token to score"):
        summarise(token_scores([5], _context_free_gpt2()))


def test_score_text_uses_the_tokenizer_and_its_beginning_of_text_token(tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = GPT2LMHeadModel.from_pretrained(tiny_model_dir).eval()
    text = "The council met on Monday."
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    scores = score_text(text, model=model, tokenizer=tokenizer)
    assert scores.tokens == len(ids)  # every token, thanks to <|endoftext|> before it
    expected = token_scores(ids, model, bos_id=tokenizer.bos_token_id)
    assert scores.mean_logprob == pytest.approx(sum(expected.logprobs) / len(ids))
