"""Machine-text detector scores from a causal language model (GLTR-style).

Nothing here imports Django. For a text and a scoring model: the mean log-probability of
its tokens, the perplexity, and the share of tokens that the model ranks among its top
10 / 100 / 1000 next-token candidates (Gehrmann et al., 2019, "GLTR"). Machine-written
text tends to score higher on all of them than human text under a similar model.

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
from dataclasses import dataclass
from typing import Any

SCORER_VERSION = "credence-gltr-v1"
RANK_CUTOFFS = (10, 100, 1000)


@dataclass(frozen=True)
class DetectorScores:
    tokens: int
    mean_logprob: float
    perplexity: float
    rank_top10: float
    rank_top100: float
    rank_top1000: float


@dataclass(frozen=True)
class TokenScores:
    """Per scored token: its log-probability and its rank under the model."""

    logprobs: list[float]
    ranks: list[int]


def token_scores(
    ids: Sequence[int], model: Any, *, bos_id: int | None = None, context_length: int = 0
) -> TokenScores:
    """Log-probability and rank of each token of ``ids`` given the tokens before it."""
    import torch

    sequence = ([bos_id] if bos_id is not None else []) + list(ids)
    first_scored = 1  # position 0 has no context
    if len(sequence) <= first_scored:
        return TokenScores(logprobs=[], ranks=[])
    window = context_length or len(sequence)
    stride = max(window // 2, 1)
    device = next(model.parameters()).device
    logprobs: list[float] = []
    ranks: list[int] = []
    scored_up_to = first_scored  # positions < this are scored already
    start = 0
    with torch.inference_mode():
        while scored_up_to < len(sequence):
            end = min(start + window, len(sequence))
            piece = torch.tensor([sequence[start:end]], dtype=torch.long, device=device)
            logits = model(input_ids=piece).logits[0].float()
            # Logits at position p predict token p + 1.
            predicting = logits[scored_up_to - start - 1 : end - start - 1]
            targets = piece[0, scored_up_to - start : end - start]
            log_probs = torch.log_softmax(predicting, dim=-1)
            chosen = log_probs.gather(1, targets[:, None])[:, 0]
            chosen_logits = predicting.gather(1, targets[:, None])
            rank = (predicting > chosen_logits).sum(dim=-1)
            logprobs.extend(float(v) for v in chosen.cpu())
            ranks.extend(int(v) for v in rank.cpu())
            scored_up_to = end
            start = max(end - window + stride, start + 1) if end < len(sequence) else end
    return TokenScores(logprobs=logprobs, ranks=ranks)


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
    )


def score_text(text: str, *, model: Any, tokenizer: Any, context_length: int = 0) -> DetectorScores:
    """Detector scores of a text under a causal LM and its tokenizer."""
    ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    if not context_length:
        config = getattr(model, "config", None)
        context_length = int(
            getattr(config, "n_positions", 0) or getattr(config, "max_position_embeddings", 0) or 0
        )
    return summarise(token_scores(ids, model, bos_id=bos, context_length=context_length))
