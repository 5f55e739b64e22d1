"""The versioned clean-up pipeline: from a raw continuation to text fit for participants.

Pure functions over plain strings (no Django, no torch). ``clean(raw, budget=...)`` runs
the steps below in order and returns the cleaned continuation with the names of the steps
that changed something. The raw text is always kept beside it (``Sample.raw_text``), and
``CLEANUP_VERSION`` is stored with every sample: change a step's behaviour, bump it.

Steps, in order:

1. ``cut_at_end_marker`` — drop everything from the first end-of-text marker on (the
   engine's ``END_MARKERS``: ``<|endoftext|>``, ``</s>``, ...).
2. ``normalise_paragraphs`` — drop control characters and U+FFFD (a byte-level model's
   broken UTF-8, and where a stored raw text had NUL, which PostgreSQL cannot hold),
   collapse whitespace, make every non-empty line a paragraph (paragraphs separated by
   a blank line, as in article bodies).
3. ``strip_boilerplate`` — drop whole paragraphs that are web-page furniture rather than
   article text (``BOILERPLATE``): "Advertisement", newsletter and sign-up prompts,
   "Click here", "Follow us on", "Read more:", copyright lines, image captions, "Related:".
4. ``collapse_repetition`` — a paragraph or sentence repeated right after itself is kept
   once; when one word n-gram (n = ``REPEAT_NGRAM``) occurs ``REPEAT_TIMES`` or more
   times, the text is cut where its second occurrence starts (the loop is kept once).
5. ``drop_partial_sentence`` — the text ends at the last complete sentence.
6. ``truncate_to_budget`` — cut at the sentence end whose running word count is nearest
   the budget (length matching); never below one sentence; a text within budget is kept.

Prepending the real lede is not part of the continuation: ``compose_article`` builds the
article body from the real opening and the cleaned continuation.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from generation.engine import END_MARKERS
from generation.prompts import paragraphs, sentence_ends, split_sentences

# 3: U+FFFD is dropped with the control characters, so that cleaning the stored raw
# text (NUL stored as U+FFFD) gives the sample's clean text again.
CLEANUP_VERSION = "3"

REPEAT_NGRAM = 8
REPEAT_TIMES = 3

# Whole paragraphs matching one of these (case-insensitive, after stripping) are dropped.
BOILERPLATE: tuple[str, ...] = (
    r"^advertisements?:?$",  # "Advertisement", "ADVERTISEMENT"
    r"^(?:story continues below )?advertisement\b.{0,40}$",
    r"^(?:please )?sign up (?:for|to) (?:our|the|my)\b.*newsletters?\b.*$",
    r"^(?:please )?subscribe (?:to|for) (?:our|the)\b.*$",
    r"^click here\b.*$",
    r"^follow (?:us|me) (?:on|at)\b.*$",
    r"^(?:read|see) (?:more|also)\s*:.*$",
    r"^read more\.?$",
    r"^related(?: (?:articles?|stories|coverage|news))?\s*:.*$",
    r"^(?:copyright|\(c\)|©).*$",
    r"^all rights reserved\.?$",
    r"^(?:image|photo|photograph|picture|caption|video)(?: credit)?\s*:.*$",
    r"^share (?:this|on)\b.{0,60}$",
)
_BOILERPLATE = [re.compile(pattern, re.IGNORECASE) for pattern in BOILERPLATE]
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")
_WORD = re.compile(r"\S+")


@dataclass(frozen=True)
class CleanupResult:
    text: str
    steps: tuple[str, ...]  # the steps that changed the text, in order
    version: str = CLEANUP_VERSION


def cut_at_end_marker(text: str) -> str:
    for marker in END_MARKERS:
        text = text.split(marker, 1)[0]
    return text


def normalise_paragraphs(text: str) -> str:
    text = _CONTROL.sub("", text)
    lines = [" ".join(line.split()) for line in text.splitlines()]
    return "\n\n".join(line for line in lines if line)


def _split(text: str) -> list[str]:
    return [p for p in text.split("\n\n") if p]


def strip_boilerplate(text: str) -> str:
    kept = [p for p in _split(text) if not any(rx.match(p.strip()) for rx in _BOILERPLATE)]
    return "\n\n".join(kept)


def _norm(words: list[str]) -> tuple[str, ...]:
    return tuple(w.lower().strip(".,;:!?\"'()[]\u201c\u201d\u2018\u2019") for w in words)


def collapse_repetition(text: str) -> str:
    # Consecutive identical paragraphs, then consecutive identical sentences.
    paras: list[str] = []
    for paragraph in _split(text):
        if not paras or paragraph != paras[-1]:
            paras.append(paragraph)
    collapsed = []
    for paragraph in paras:
        sentences: list[str] = []
        for sentence in split_sentences(paragraph):
            if not sentences or sentence != sentences[-1]:
                sentences.append(sentence)
        collapsed.append(" ".join(sentences))
    # A paragraph equal to the one before may appear once its inner repeats are gone.
    paras = [p for i, p in enumerate(collapsed) if i == 0 or p != collapsed[i - 1]]
    text = "\n\n".join(paras)
    # A loop of any length: the same n-gram seen REPEAT_TIMES times; cut at its second start.
    spans = [m.span() for m in _WORD.finditer(text)]
    words = _norm([text[a:b] for a, b in spans])
    seen: dict[tuple[str, ...], list[int]] = {}
    cut: int | None = None
    for i in range(len(words) - REPEAT_NGRAM + 1):
        starts = seen.setdefault(words[i : i + REPEAT_NGRAM], [])
        # Overlapping occurrences ("a a a a ...") count too; a loop is a loop.
        starts.append(i)
        if len(starts) >= REPEAT_TIMES:
            cut = starts[1]
            break
    if cut is not None:
        text = text[: spans[cut][0]].rstrip()
    return text


def drop_partial_sentence(text: str) -> str:
    paras = _split(text)
    while paras:
        ends = sentence_ends(paras[-1])
        if ends:
            paras[-1] = paras[-1][: ends[-1]].rstrip()
            break
        paras.pop()
    return "\n\n".join(paras)


def word_count(text: str) -> int:
    return len(text.split())


def truncate_to_budget(text: str, budget: int | None) -> str:
    """Cut at the sentence end nearest ``budget`` words (ties: the shorter text)."""
    if budget is None or word_count(text) <= budget:
        return text
    # Candidate cuts: (words so far, paragraphs kept, sentences kept of the last one).
    paras = [split_sentences(p) for p in paragraphs(text)]
    best: tuple[int, int, int] | None = None
    words = 0
    for p_index, sentences in enumerate(paras):
        for s_index, sentence in enumerate(sentences):
            words += word_count(sentence)
            if best is None or abs(words - budget) < abs(best[0] - budget):
                best = (words, p_index, s_index)
    if best is None:
        return text
    _, p_index, s_index = best
    kept = [" ".join(s) for s in paras[:p_index]] + [" ".join(paras[p_index][: s_index + 1])]
    return "\n\n".join(kept)


STEPS: tuple[tuple[str, Callable[[str], str]], ...] = (
    ("cut_at_end_marker", cut_at_end_marker),
    ("normalise_paragraphs", normalise_paragraphs),
    ("strip_boilerplate", strip_boilerplate),
    ("collapse_repetition", collapse_repetition),
    ("drop_partial_sentence", drop_partial_sentence),
)


def clean(raw: str, *, budget: int | None = None) -> CleanupResult:
    """Run the pipeline on a raw continuation; ``budget`` is the word budget of the
    continuation (None: no truncation)."""
    text, applied = raw, []
    for name, step in STEPS:
        after = step(text)
        if after != text:
            applied.append(name)
        text = after
    after = truncate_to_budget(text, budget)
    if after != text:
        applied.append("truncate_to_budget")
    return CleanupResult(text=after.strip(), steps=tuple(applied))


def word_budget(
    *,
    length_match: str,
    source_words: int,
    prefix_words: int,
    prepend_lede: bool,
    fixed: int | None = None,
) -> int | None:
    """The continuation's word budget. ``source``: the real article's length, less the
    real opening when it begins the generated article; ``fixed``: ``fixed`` words;
    ``none``: no budget."""
    if length_match == "source":
        return max(source_words - (prefix_words if prepend_lede else 0), 1)
    if length_match == "fixed":
        if not fixed or fixed < 1:
            raise ValueError("A fixed length match needs a word budget of at least 1.")
        return fixed
    if length_match == "none":
        return None
    raise ValueError(f'Unknown length match "{length_match}"; use source, fixed or none.')


def compose_article(*, prefix: str, continuation: str, prepend_lede: bool) -> str:
    """The generated article's body: the real opening (when prepended), then the
    cleaned continuation, as paragraphs separated by blank lines."""
    parts = [prefix.strip()] if prepend_lede and prefix.strip() else []
    parts.append(continuation.strip())
    return "\n\n".join(p for p in parts if p)
