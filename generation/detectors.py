"""Machine-text detector scores from causal language models.

Nothing here imports Django. For a text and a scoring model: the mean log-probability of
its tokens, the perplexity, and the share of tokens that the model ranks among its top
10 / 100 / 1000 next-token candidates (Gehrmann et al., 2019, "GLTR"); Fast-DetectGPT's
analytic sampling discrepancy (Bao et al., ICLR 2024), with the scoring model as its own
sampling model; and, given a second model sharing the tokenizer, the Binoculars score
(Hans et al., ICML 2024). Machine-written text tends to score higher than human text on
all of them except perplexity and Binoculars, where it scores lower.

Conventions, so scores are comparable across articles:
- Natural logarithms; perplexity = exp(-mean log-probability).
- A token's rank is the number of vocabulary entries with a strictly larger logit at its
  position (0 = the model's top choice), so "top 10" means rank < 10.
- When the tokenizer has a beginning-of-text token (GPT-2's ``<|endoftext|>``), it is put
  before the text and every text token is scored; otherwise the first token has no
  context and is not scored.
- Texts longer than the model's context are scored in overlapping windows; every token
  is scored once, with at least half a window of context after the first window.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

# v2 adds Fast-DetectGPT and Binoculars; the GLTR scores are computed as in v1.
SCORER_VERSION = "credence-detectors-v2"
RANK_CUTOFFS = (10, 100, 1000)


@dataclass(frozen=True)
class DetectorScores:
    tokens: int
    mean_logprob: float
    perplexity: float
    rank_top10: float
    rank_top100: float
    rank_top1000: float
    # Fast-DetectGPT's analytic sampling discrepancy; NaN when the model's distribution
    # is a point mass at every position (no variance to standardise by).
    fast_detectgpt: float = math.nan


@dataclass(frozen=True)
class TokenScores:
    """Per scored token: its log-probability and its rank under the model, and the mean
    and variance of the log-probability of a token drawn from the model's own
    next-token distribution at that position (Fast-DetectGPT's ``mu_t``, ``sigma_t^2``)."""

    logprobs: list[float]
    ranks: list[int]
    expected_logprobs: list[float] = field(default_factory=list)
    logprob_variances: list[float] = field(default_factory=list)


def _windows(length: int, window: int, first_scored: int) -> list[tuple[int, int, int]]:
    """(start, end, first position scored) of each window over a sequence of ``length``
    tokens: every position from ``first_scored`` on is scored exactly once, each window
    after the first with at least half a window of context."""
    stride = max(window // 2, 1)
    pieces: list[tuple[int, int, int]] = []
    scored_up_to, start = first_scored, 0
    while scored_up_to < length:
        end = min(start + window, length)
        pieces.append((start, end, scored_up_to))
        scored_up_to = end
        start = max(end - window + stride, start + 1) if end < length else end
    return pieces


def _window_logits(model: Any, sequence: list[int], piece: tuple[int, int, int]) -> Any:
    """The logits predicting the scored positions of one window (float32, one row per
    scored token) and those tokens' ids."""
    import torch

    start, end, scored_from = piece
    device = next(model.parameters()).device
    ids = torch.tensor([sequence[start:end]], dtype=torch.long, device=device)
    logits = model(input_ids=ids).logits[0].float()
    # Logits at position p predict token p + 1.
    return logits[scored_from - start - 1 : end - start - 1], ids[
        0, scored_from - start : end - start
    ]


def token_scores(
    ids: Sequence[int], model: Any, *, bos_id: int | None = None, context_length: int = 0
) -> TokenScores:
    """Log-probability and rank of each token of ``ids`` given the tokens before it, with
    the mean and variance of the log-probability under the model's own distribution."""
    import torch

    sequence = ([bos_id] if bos_id is not None else []) + list(ids)
    logprobs: list[float] = []
    ranks: list[int] = []
    means: list[float] = []
    variances: list[float] = []
    with torch.inference_mode():
        for piece in _windows(len(sequence), context_length or len(sequence), 1):
            predicting, targets = _window_logits(model, sequence, piece)
            log_probs = torch.log_softmax(predicting, dim=-1)
            chosen = log_probs.gather(1, targets[:, None])[:, 0]
            chosen_logits = predicting.gather(1, targets[:, None])
            rank = (predicting > chosen_logits).sum(dim=-1)
            # Fast-DetectGPT: E[log p(X)] and Var[log p(X)] for X ~ p at this position.
            probs = log_probs.exp()
            mean = (probs * log_probs).sum(dim=-1)
            variance = ((probs * log_probs.square()).sum(dim=-1) - mean.square()).clamp(min=0)
            logprobs.extend(float(v) for v in chosen.cpu())
            ranks.extend(int(v) for v in rank.cpu())
            means.extend(float(v) for v in mean.cpu())
            variances.extend(float(v) for v in variance.cpu())
    return TokenScores(
        logprobs=logprobs, ranks=ranks, expected_logprobs=means, logprob_variances=variances
    )


def fast_detectgpt(scores: TokenScores) -> float:
    """Fast-DetectGPT's analytic sampling discrepancy (Bao et al., ICLR 2024, eq. 5 with
    the scoring model as the sampling model):
    ``(sum_t log p(x_t) - sum_t mu_t) / sqrt(sum_t sigma_t^2)``, where ``mu_t`` and
    ``sigma_t^2`` are the mean and variance of ``log p`` of a token drawn from the model
    at position t. Higher = more machine-like. NaN when every variance is 0."""
    n = len(scores.logprobs)
    if n == 0:
        raise ValueError("The text has no token to score.")
    if len(scores.expected_logprobs) != n or len(scores.logprob_variances) != n:
        raise ValueError("Fast-DetectGPT needs the mean and variance at every scored token.")
    spread = sum(scores.logprob_variances)
    if spread <= 0:
        return math.nan
    return (sum(scores.logprobs) - sum(scores.expected_logprobs)) / math.sqrt(spread)


def summarise(scores: TokenScores) -> DetectorScores:
    """Mean log-probability, perplexity and top-k rank shares of scored tokens."""
    n = len(scores.logprobs)
    if n == 0:
        raise ValueError("The text has no token to score.")
    mean = sum(scores.logprobs) / n
    shares = [sum(1 for r in scores.ranks if r < cutoff) / n for cutoff in RANK_CUTOFFS]
    return DetectorScores(
        tokens=n,
        mean_logprob=mean,
        perplexity=math.exp(-mean),
        rank_top10=shares[0],
        rank_top100=shares[1],
        rank_top1000=shares[2],
        fast_detectgpt=fast_detectgpt(scores) if scores.logprob_variances else math.nan,
    )


def _context_length(model: Any) -> int:
    config = getattr(model, "config", None)
    return int(
        getattr(config, "n_positions", 0) or getattr(config, "max_position_embeddings", 0) or 0
    )


def score_text(text: str, *, model: Any, tokenizer: Any, context_length: int = 0) -> DetectorScores:
    """Detector scores of a text under a causal LM and its tokenizer."""
    ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    context_length = context_length or _context_length(model)
    return summarise(token_scores(ids, model, bos_id=bos, context_length=context_length))


@dataclass(frozen=True)
class BinocularsScores:
    """Binoculars (Hans et al., ICML 2024) of one text: the observer's log-perplexity,
    the observer-performer log cross-perplexity and their ratio (lower = more
    machine-like)."""

    tokens: int
    log_perplexity: float
    log_cross_perplexity: float
    score: float


def tokenizer_mismatch(first: Any, second: Any) -> str:
    """Why two tokenizers cannot be used as one for Binoculars ("" when they can): both
    must map the same strings to the same ids, with the same beginning-of-text token."""
    if first.get_vocab() != second.get_vocab():
        return "the two models' tokenizers have different vocabularies"
    if first.bos_token_id != second.bos_token_id:
        return "the two models' tokenizers have different beginning-of-text tokens"
    return ""


def binoculars_tokens(
    ids: Sequence[int],
    observer: Any,
    performer: Any,
    *,
    bos_id: int | None = None,
    context_length: int = 0,
) -> tuple[list[float], list[float]]:
    """Per scored token: the observer's log-probability of the token, and the cross
    entropy ``-sum_v p_obs(v) log p_perf(v)`` of the performer's next-token distribution
    under the observer's, both given the same preceding tokens (same windows as
    :func:`token_scores`). Raises ValueError when the models' vocabularies differ."""
    import torch

    sequence = ([bos_id] if bos_id is not None else []) + list(ids)
    logprobs: list[float] = []
    cross: list[float] = []
    with torch.inference_mode():
        for piece in _windows(len(sequence), context_length or len(sequence), 1):
            observed, targets = _window_logits(observer, sequence, piece)
            performed, _ = _window_logits(performer, sequence, piece)
            if observed.shape != performed.shape:
                raise ValueError(
                    f"The observer scores {observed.shape[-1]} tokens and the performer "
                    f"{performed.shape[-1]}: Binoculars needs one vocabulary."
                )
            observer_log = torch.log_softmax(observed, dim=-1)
            performer_log = torch.log_softmax(performed.to(observed.device), dim=-1)
            chosen = observer_log.gather(1, targets[:, None])[:, 0]
            entropy = -(observer_log.exp() * performer_log).sum(dim=-1)
            logprobs.extend(float(v) for v in chosen.cpu())
            cross.extend(float(v) for v in entropy.cpu())
    return logprobs, cross


def binoculars(logprobs: Sequence[float], cross_entropies: Sequence[float]) -> BinocularsScores:
    """The Binoculars score from :func:`binoculars_tokens`: ``log PPL_obs / log X-PPL``,
    with ``log PPL_obs = -mean_t log p_obs(x_t)`` and
    ``log X-PPL = mean_t -sum_v p_obs(v) log p_perf(v)`` (the paper's eq. 3-4, M1 =
    observer, M2 = performer; the authors' released code takes the numerator from the
    performer instead). NaN when the cross-perplexity is 0."""
    n = len(logprobs)
    if n == 0:
        raise ValueError("The text has no token to score.")
    if len(cross_entropies) != n:
        raise ValueError("Binoculars needs a cross entropy at every scored token.")
    log_ppl = -sum(logprobs) / n
    log_xppl = sum(cross_entropies) / n
    score = log_ppl / log_xppl if log_xppl > 0 else math.nan
    return BinocularsScores(
        tokens=n, log_perplexity=log_ppl, log_cross_perplexity=log_xppl, score=score
    )


def binoculars_text(
    text: str, *, observer: Any, performer: Any, tokenizer: Any, context_length: int = 0
) -> BinocularsScores:
    """Binoculars of a text, with the observer's tokenizer (which the caller has checked
    with :func:`tokenizer_mismatch` against the performer's). Long texts are scored in
    windows of the shorter of the two contexts."""
    ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
    lengths = [
        n for n in (context_length, _context_length(observer), _context_length(performer)) if n
    ]
    window = min(lengths) if lengths else 0
    logprobs, cross = binoculars_tokens(
        ids, observer, performer, bos_id=tokenizer.bos_token_id, context_length=window
    )
    return binoculars(logprobs, cross)
