"""Prompt builders: which part of a real article the model is asked to continue.

Pure functions over plain data (no Django, no torch). ``build_prompt(kind, source,
context)`` returns the prompt text and the part of it that belongs in the article body
(``body_prefix``: the real opening that may begin the generated article; never the
headline nor the context articles).

Sentence splitting (``split_sentences``) is shared with the clean-up pipeline. A sentence
ends at ``.``, ``!`` or ``?`` (repeated or not), followed by any closing quotes or
brackets, then whitespace and a word that does not start with a lower-case letter, or
the end of the text. A full stop is not an end after a title or common abbreviation
("Mr.", "Dr.", "Jan.", "etc.") or an initial ("John F. Kennedy"). After a dotted acronym
("U.S.", "D.C.", "a.m.") it is an end only when the next word is a common sentence
opener ("The", "He", "In", ... ``SENTENCE_STARTERS``): "the U.S. Congress" stays one
sentence, "in Washington D.C. The team" is two.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

FIRST_SENTENCE = "first_sentence"
LEDE = "lede"
FIRST_TWO_PARAGRAPHS = "first_two_paragraphs"
HEADLINE_FIRST_SENTENCE = "headline_first_sentence"
HEADLINE_LEDE = "headline_lede"
HEADLINE_LEDE_CONTEXT = "headline_lede_context"

KINDS: tuple[str, ...] = (
    FIRST_SENTENCE,
    LEDE,
    FIRST_TWO_PARAGRAPHS,
    HEADLINE_FIRST_SENTENCE,
    HEADLINE_LEDE,
    HEADLINE_LEDE_CONTEXT,
)

ABBREVIATIONS = frozenset(
    {"mr", "mrs", "ms", "messrs", "dr", "prof", "st", "jr", "sr", "gen", "col", "lt", "capt",
     "sgt", "maj", "adm", "cmdr", "sen", "rep", "gov", "pres", "rev", "hon", "fr",
     "vs", "v", "etc", "inc", "ltd", "co", "corp", "bros", "dept", "univ", "est", "approx",
     "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sept", "sep", "oct", "nov", "dec",
     "mt", "ft", "ave", "blvd", "rd", "ca", "al"}
)  # fmt: skip
# Abbreviations only before a number: "No. 5", "Vol. 2", "Fig. 3".
NUMBER_ABBREVIATIONS = frozenset({"no", "nos", "vol", "fig", "pp"})

# Words that begin a sentence far more often than they follow "U.S." or "D.C." inside one:
# after a dotted acronym, one of these means the acronym ended the sentence.
SENTENCE_STARTERS = frozenset(
    {"the", "a", "an", "he", "she", "it", "they", "we", "i", "you", "this", "that", "these",
     "those", "there", "his", "her", "its", "their", "our", "in", "on", "at", "after",
     "before", "but", "and", "however", "meanwhile", "according", "when", "while", "if",
     "as", "since", "last", "earlier", "later", "many", "some", "officials", "police"}
)  # fmt: skip

# Terminal punctuation, then closing quotes or brackets.
_END = re.compile(r"[.!?]+[\"'\u201d\u2019)\]]*")
# A dotted acronym or abbreviation such as "U.S", "e.g", "a.m" (the final dot excluded).
_DOTTED = re.compile(r"^(?:[A-Za-z]\.)+[A-Za-z]$")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")


@dataclass(frozen=True)
class SourceText:
    """A real article as the prompt builders see it."""

    title: str
    body: str  # paragraphs separated by a blank line
    published: date | None = None


@dataclass(frozen=True)
class Prompt:
    text: str
    body_prefix: str  # the real opening, as it would begin the generated article


def paragraphs(body: str) -> list[str]:
    """Non-empty paragraphs of a body, whitespace inside each collapsed."""
    return [" ".join(p.split()) for p in _PARAGRAPH_BREAK.split(body) if p.strip()]


def _is_abbreviation(text: str, dot: int, following: str) -> bool:
    match = re.search(r"[\w.]*$", text[:dot])
    token = match.group(0).lstrip(".") if match else ""
    if not token:
        return False
    if token.lower() in NUMBER_ABBREVIATIONS:
        return following[:1].isdigit()  # "No. 5", but "He said no. Then"
    if token.lower() in ABBREVIATIONS:
        return True
    if _DOTTED.match(token):
        next_word = re.match(r"[\"'\u201c\u2018(]*(\w+)", following)
        return not (next_word and next_word.group(1).lower() in SENTENCE_STARTERS)
    return len(token) == 1 and token.isupper()  # an initial: "John F. Kennedy"


def sentence_ends(text: str) -> list[int]:
    """Offsets just after each sentence end in ``text`` (see the module docstring)."""
    ends = []
    for match in _END.finditer(text):
        after = text[match.end() :]
        if after and not after[0].isspace():
            continue  # "3.5", "U.S.-led", "yahoo.com"
        following = after.lstrip()
        if following and following[0].islower():
            continue  # '"Why?" she asked.' and "5 p.m. on Monday"
        single_dot = match.group(0).rstrip("\"'\u201d\u2019)]") == "."
        if single_dot and _is_abbreviation(text, match.start(), following):
            continue
        ends.append(match.end())
    return ends


def split_sentences(text: str) -> list[str]:
    """The sentences of one paragraph; a trailing fragment without an end is kept last."""
    text = " ".join(text.split())
    pieces, start = [], 0
    for end in sentence_ends(text):
        pieces.append(text[start:end].strip())
        start = end
    if text[start:].strip():
        pieces.append(text[start:].strip())
    return [p for p in pieces if p]


def first_sentence(text: str) -> str:
    """The first sentence of a text (the whole first paragraph when it has no end)."""
    first = paragraphs(text)[:1]
    sentences = split_sentences(first[0]) if first else []
    return sentences[0] if sentences else ""


def format_context(context: Sequence[SourceText]) -> str:
    """Earlier articles as a prompt's preamble: each "headline\\n\\nlede", oldest first,
    separated by blank lines."""
    blocks = []
    for article in context:
        lede = (paragraphs(article.body) or [""])[0]
        blocks.append(f"{article.title.strip()}\n\n{lede}")
    return "\n\n".join(blocks)


def build_prompt(kind: str, source: SourceText, context: Sequence[SourceText] = ()) -> Prompt:
    """The prompt of ``kind`` for ``source``; ``context`` is used by
    ``headline_lede_context`` only (the earlier articles, in the order given)."""
    paras = paragraphs(source.body)
    lede = paras[0] if paras else ""
    title = " ".join(source.title.split())
    if kind == FIRST_SENTENCE:
        sentence = first_sentence(lede)
        return Prompt(sentence, sentence)
    if kind == LEDE:
        return Prompt(lede, lede)
    if kind == FIRST_TWO_PARAGRAPHS:
        opening = "\n\n".join(paras[:2])
        return Prompt(opening, opening)
    if kind == HEADLINE_FIRST_SENTENCE:
        sentence = first_sentence(lede)
        return Prompt(f"{title}\n\n{sentence}", sentence)
    if kind == HEADLINE_LEDE:
        return Prompt(f"{title}\n\n{lede}", lede)
    if kind == HEADLINE_LEDE_CONTEXT:
        preamble = format_context(context)
        own = f"{title}\n\n{lede}"
        return Prompt(f"{preamble}\n\n{own}" if preamble else own, lede)
    raise ValueError(f'Unknown prompt kind "{kind}"; use one of {", ".join(KINDS)}.')


def earlier_articles(source: SourceText, pool: Sequence[SourceText], k: int) -> list[SourceText]:
    """The ``k`` articles of ``pool`` published most recently before ``source``, oldest
    first. Articles without a date, or the source itself, never count as earlier."""
    if k <= 0 or source.published is None:
        return []
    published = source.published
    earlier = [a for a in pool if a.published is not None and a.published < published]
    earlier.sort(key=lambda a: a.published or published, reverse=True)
    return list(reversed(earlier[:k]))
