"""Fast-DetectGPT and Binoculars against values computed by hand on tiny GPT-2 models.

Each expected value is built here from the model's raw logits, one position at a time
with plain Python floats (a softmax written out, then the paper's formula), never from the
detector's own helpers.
"""

from __future__ import annotations

import math

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from generation.detectors import (
    binoculars,
    binoculars_tokens,
    fast_detectgpt,
    summarise,
    token_scores,
    tokenizer_mismatch,
)


def _random_gpt2(seed: int, vocab: int = 50) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=32, vocab_size=vocab)
    return GPT2LMHeadModel(config).eval()


def _log_softmax(row: list[float]) -> list[float]:
    top = max(row)
    log_normaliser = top + math.log(sum(math.exp(v - top) for v in row))
    return [v - log_normaliser for v in row]


def _logit_rows(model: GPT2LMHeadModel, ids: list[int]) -> list[list[float]]:
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0]
    return [[float(v) for v in row] for row in logits]


def test_fast_detectgpt_matches_the_analytic_formula_on_a_four_token_text() -> None:
    model = _random_gpt2(seed=7)
    ids = [3, 17, 42, 8]
    rows = _logit_rows(model, ids)
    observed, means, variances = [], [], []
    for position in range(1, len(ids)):
        log_p = _log_softmax(rows[position - 1])
        p = [math.exp(v) for v in log_p]
        mean = sum(pv * lv for pv, lv in zip(p, log_p, strict=True))
        second = sum(pv * lv * lv for pv, lv in zip(p, log_p, strict=True))
        observed.append(log_p[ids[position]])
        means.append(mean)
        variances.append(second - mean * mean)
    expected = (sum(observed) - sum(means)) / math.sqrt(sum(variances))

    got = token_scores(ids, model)

    assert got.expected_logprobs == pytest.approx(means, abs=1e-5)
    assert got.logprob_variances == pytest.approx(variances, abs=1e-5)
    assert fast_detectgpt(got) == pytest.approx(expected, abs=1e-4)
    assert summarise(got).fast_detectgpt == pytest.approx(expected, abs=1e-4)


def test_fast_detectgpt_of_the_model_s_own_top_choices_is_high_and_of_its_last_is_low() -> None:
    # A sanity check with a known sign: tokens the model finds most likely sit above the
    # mean log-probability, the least likely far below it.
    model = _random_gpt2(seed=11)
    ids, worst = [5], [5]
    for _ in range(4):
        for sequence in (ids, worst):
            row = _logit_rows(model, sequence)[-1]
            pick = max if sequence is ids else min
            sequence.append(pick(range(len(row)), key=row.__getitem__))
    assert fast_detectgpt(token_scores(ids, model)) > 0
    assert fast_detectgpt(token_scores(worst, model)) < 0


def test_fast_detectgpt_is_nan_without_variance_and_refuses_an_empty_text() -> None:
    from generation.detectors import TokenScores

    flat = TokenScores(
        logprobs=[0.0, 0.0], ranks=[0, 0], expected_logprobs=[0.0, 0.0], logprob_variances=[0, 0]
    )
    assert math.isnan(fast_detectgpt(flat))
    with pytest.raises(ValueError, match="no token to score"):
        fast_detectgpt(TokenScores(logprobs=[], ranks=[]))


def test_binoculars_matches_the_papers_formula_on_a_five_token_text() -> None:
    observer, performer = _random_gpt2(seed=7), _random_gpt2(seed=8)
    ids = [3, 17, 42, 8, 29]
    observer_rows, performer_rows = _logit_rows(observer, ids), _logit_rows(performer, ids)
    log_ppl_terms, cross_terms = [], []
    for position in range(1, len(ids)):
        log_obs = _log_softmax(observer_rows[position - 1])
        log_perf = _log_softmax(performer_rows[position - 1])
        log_ppl_terms.append(-log_obs[ids[position]])
        cross_terms.append(
            -sum(math.exp(lo) * lp for lo, lp in zip(log_obs, log_perf, strict=True))
        )
    log_ppl = sum(log_ppl_terms) / 4
    log_xppl = sum(cross_terms) / 4

    logprobs, cross = binoculars_tokens(ids, observer, performer)
    result = binoculars(logprobs, cross)

    assert [-v for v in logprobs] == pytest.approx(log_ppl_terms, abs=1e-5)
    assert cross == pytest.approx(cross_terms, abs=1e-5)
    assert result.tokens == 4
    assert result.log_perplexity == pytest.approx(log_ppl, abs=1e-5)
    assert result.log_cross_perplexity == pytest.approx(log_xppl, abs=1e-5)
    assert result.score == pytest.approx(log_ppl / log_xppl, abs=1e-5)
    # The ratio is not symmetric in the two models: swapping roles changes it.
    swapped = binoculars(*binoculars_tokens(ids, performer, observer))
    assert swapped.score != pytest.approx(result.score, abs=1e-3)


def test_binoculars_with_a_beginning_of_text_token_scores_every_token() -> None:
    observer, performer = _random_gpt2(seed=7), _random_gpt2(seed=8)
    logprobs, cross = binoculars_tokens([17, 42], observer, performer, bos_id=3)
    reference, _ = binoculars_tokens([3, 17, 42], observer, performer)
    assert logprobs == pytest.approx(reference, abs=1e-6)
    assert len(cross) == 2


def test_binoculars_in_windows_scores_every_token_once() -> None:
    observer, performer = _random_gpt2(seed=7), _random_gpt2(seed=8)
    ids = [(i * 7) % 50 for i in range(30)]
    whole = binoculars_tokens(ids, observer, performer, context_length=32)
    windowed = binoculars_tokens(ids, observer, performer, context_length=8)
    assert len(windowed[0]) == len(windowed[1]) == len(whole[0]) == 29
    assert windowed[1][:7] == pytest.approx(whole[1][:7], abs=1e-5)


def test_binoculars_refuses_models_with_different_vocabularies() -> None:
    with pytest.raises(ValueError, match="one vocabulary"):
        binoculars_tokens([1, 2, 3], _random_gpt2(seed=7, vocab=50), _random_gpt2(seed=8, vocab=60))
    with pytest.raises(ValueError, match="no token to score"):
        binoculars([], [])


def test_tokenizers_must_share_their_vocabulary(tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    from transformers import AutoTokenizer, GPT2TokenizerFast

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    same = AutoTokenizer.from_pretrained(tiny_model_dir)
    assert tokenizer_mismatch(tokenizer, same) == ""
    other = GPT2TokenizerFast(
        tokenizer_object=tokenizer.backend_tokenizer, eos_token="<|endoftext|>"
    )
    other.add_tokens(["credence"])
    assert "different vocabularies" in tokenizer_mismatch(tokenizer, other)
