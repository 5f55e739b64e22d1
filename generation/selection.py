"""Quality flags and selection modes over a run's samples.

Pure functions over plain data (no Django). ``quality_flags`` marks samples a curator
should look at twice; ``select`` picks which samples become stimuli, per prompt (source
article), in one of ``MODES``. Which mode chose a stimulus is recorded with it, so a
study can report whether its machine texts were cherry-picked.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

TOO_SHORT = "too_short"
REPETITION = "repetition"
NEAR_DUPLICATE = "near_duplicate"
SOURCE_OVERLAP = "source_overlap"
FLAGS: tuple[str, ...] = (TOO_SHORT, REPETITION, NEAR_DUPLICATE, SOURCE_OVERLAP)

MIN_WORDS = 60
MIN_BUDGET_SHARE = 0.5
MIN_DISTINCT_4GRAMS = 0.5
NEAR_DUPLICATE_JACCARD = 0.5
SHINGLE = 5
OVERLAP_RUN = 12  # a shared run of this many words is copying
OVERLAP_NGRAM = 8
OVERLAP_SHARE = 0.3

ALL = "all"
RANDOM_K = "random_k"
CLOSEST_LENGTH = "closest_length"
CURATED = "curated"
MODES: tuple[str, ...] = (ALL, RANDOM_K, CLOSEST_LENGTH, CURATED)

_TOKEN = re.compile(r"[\w']+")


@dataclass(frozen=True)
class FlagInput:
    key: int
    text: str  # the cleaned continuation
    budget: int | None  # its word budget, None when there was none
    source_body: str
    collapsed: bool = False  # the clean-up collapsed a repetition loop


@dataclass(frozen=True)
class Candidate:
    key: int
    prompt: int  # the source article
    words: int  # of the cleaned continuation
    target_words: int | None  # what length matching aimed at
    usable: bool = True  # has text and was not rejected
    approved: bool = False
    rank: int | None = None


def words(text: str) -> list[str]:
    """Lower-case word tokens, punctuation dropped."""
    return _TOKEN.findall(text.lower())


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_ratio(tokens: Sequence[str], n: int = 4) -> float:
    grams = ngrams(tokens, n)
    return len(set(grams)) / len(grams) if grams else 1.0


def jaccard(a: set[tuple[str, ...]], b: set[tuple[str, ...]]) -> float:
    union = a | b
    return len(a & b) / len(union) if union else 0.0


def is_too_short(tokens: Sequence[str], budget: int | None) -> bool:
    if len(tokens) < MIN_WORDS:
        return True
    return budget is not None and len(tokens) < MIN_BUDGET_SHARE * budget


def overlaps_source(tokens: Sequence[str], source: Sequence[str]) -> bool:
    # The longest common word sequence is >= OVERLAP_RUN words exactly when the two
    # texts share an OVERLAP_RUN-gram.
    if set(ngrams(tokens, OVERLAP_RUN)) & set(ngrams(source, OVERLAP_RUN)):
        return True
    grams = ngrams(tokens, OVERLAP_NGRAM)
    if not grams:
        return False
    source_grams = set(ngrams(source, OVERLAP_NGRAM))
    return sum(g in source_grams for g in grams) / len(grams) >= OVERLAP_SHARE


def quality_flags(samples: Sequence[FlagInput]) -> dict[int, list[str]]:
    """Flags per sample key; near-duplicates are looked for among ``samples`` (give one
    run's samples together). Flags are listed in ``FLAGS`` order."""
    tokens = {s.key: words(s.text) for s in samples}
    shingles = {key: set(ngrams(t, SHINGLE)) for key, t in tokens.items()}
    duplicates: set[int] = set()
    keys = [s.key for s in samples]
    for i, a in enumerate(keys):
        for b in keys[i + 1 :]:
            if (
                shingles[a]
                and shingles[b]
                and jaccard(shingles[a], shingles[b]) >= NEAR_DUPLICATE_JACCARD
            ):
                duplicates.update((a, b))
    flags: dict[int, list[str]] = {}
    for sample in samples:
        own = tokens[sample.key]
        found = []
        if is_too_short(own, sample.budget):
            found.append(TOO_SHORT)
        if sample.collapsed or distinct_ratio(own) < MIN_DISTINCT_4GRAMS:
            found.append(REPETITION)
        if sample.key in duplicates:
            found.append(NEAR_DUPLICATE)
        if overlaps_source(own, words(sample.source_body)):
            found.append(SOURCE_OVERLAP)
        flags[sample.key] = found
    return flags


def _by_prompt(candidates: Iterable[Candidate]) -> dict[int, list[Candidate]]:
    groups: dict[int, list[Candidate]] = defaultdict(list)
    for candidate in sorted(candidates, key=lambda c: (c.prompt, c.key)):
        groups[candidate.prompt].append(candidate)
    return groups


def select(
    mode: str, candidates: Sequence[Candidate], *, k: int | None = None, seed: int | None = None
) -> list[int]:
    """The keys chosen, in (prompt, key) order.

    - ``all``: every usable sample.
    - ``random_k``: ``k`` usable samples per prompt, drawn with ``seed`` (each prompt
      from its own stream, so adding a prompt changes no other prompt's draw).
    - ``closest_length``: per prompt, the usable sample whose length is nearest its
      target (ties: the lower key); ``k`` > 1 takes the k nearest.
    - ``curated``: the human-approved samples, per prompt in rank order (unranked last),
      the first ``k`` of them when ``k`` is given.
    """
    if mode not in MODES:
        raise ValueError(f'Unknown selection mode "{mode}"; use one of {", ".join(MODES)}.')
    if k is not None and k < 1:
        raise ValueError("k must be at least 1.")
    if mode == RANDOM_K and k is None:
        raise ValueError("random_k needs k, the number of samples per prompt.")
    chosen: list[int] = []
    for prompt, group in _by_prompt(candidates).items():
        usable = [c for c in group if c.usable]
        if mode == ALL:
            picked = usable
        elif mode == RANDOM_K:
            assert k is not None
            rng = random.Random(f"{seed or 0}:{prompt}")
            picked = rng.sample(usable, min(k, len(usable)))
        elif mode == CLOSEST_LENGTH:
            ordered = sorted(
                usable,
                key=lambda c: (abs(c.words - c.target_words) if c.target_words else 0, c.key),
            )
            picked = ordered[: k or 1]
        else:
            approved = [c for c in group if c.approved]
            approved.sort(key=lambda c: (c.rank is None, c.rank or 0, c.key))
            picked = approved[:k] if k else approved
        chosen.extend(sorted(c.key for c in picked))
    return chosen
