"""Scoring definitions stored on questions (``Question.scoring``), so analysis knows what
to score from the study itself rather than from conventional question keys.

Schema (a JSON object; ``{}`` = not scored by any built-in analysis):

- ``{"role": "credible"}``: the yes/no credibility question credibility rates come from
  (a binary question about the articles).
- ``{"role": "credibility_item"}``: one of the three 1-4 items (believable, accurate,
  clear) summed into the Kreps et al. (2020) credibility index (a rating-scale or slider
  question about the articles); the index is computed when a study has exactly three.
- ``{"role": "detection", "human": [...], "machine": [...], "neutral": [...]}``: a
  "written by a human or a machine?" question about the articles; each list names the
  options that count as that judgement ("neutral" = "I don't know", left out of the
  accuracy ratio). On a choice question every option must be in exactly one list. A
  question of another kind (free text) may give no lists: answers are then mapped by the
  word they name (:func:`detection_judgement`).

Pure module (standard library only) so the question model, the instruments and
``analysis.stats`` share one definition; ``analysis.stats`` re-exports
:func:`detection_judgement`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

CREDIBLE = "credible"
CREDIBILITY_ITEM = "credibility_item"
DETECTION = "detection"
ROLES = (CREDIBLE, CREDIBILITY_ITEM, DETECTION)

HUMAN, MACHINE, UNSURE = "human", "machine", "unsure"
# The keys of a detection definition's option lists, and the judgement each stands for.
DETECTION_LISTS = {"human": HUMAN, "machine": MACHINE, "neutral": UNSURE}

# The question keys analysis used before definitions were stored (kept for the data
# migration and for studies built by hand in tests): the Kreps items, and the detection
# keys in the order analysis looked for them.
CONVENTIONAL_CREDIBILITY_KEYS = ("believable", "accurate", "clear")
CONVENTIONAL_DETECTION_KEYS = ("detection", "written_by", "written_by_4")

# Question.Kind / Question.Scope values (strings, so this module need not import models).
_BINARY, _CHOICE = "binary", "choice"
_NUMERIC = ("likert", "slider")
_PER_ARTICLE = "article"


def detection_judgement(answer: str) -> str | None:
    """Map an answer of the detection question to ``"human"``, ``"machine"`` or
    ``"unsure"`` ("I don't know" and the like); None when empty. Choices such as "Very
    likely written by a human" / "Likely written by a machine" map by the word they name."""
    text = str(answer).strip().lower().replace("\u2019", "'")
    if not text:
        return None
    # "Equally likely written by a human or a machine" is the 5-point scale's midpoint:
    # neutral, though it names a machine.
    unsure = ("know", "unsure", "not sure", "neither", "equally")
    if any(word in text for word in unsure):
        return UNSURE
    if "machine" in text or "computer" in text or "ai" in text.split():
        return MACHINE
    if "human" in text or "person" in text:
        return HUMAN
    return UNSURE


def detection_definition(options: Iterable[str]) -> dict[str, Any]:
    """A detection definition that sorts ``options`` by the word each names (the rule
    analysis applied to detection questions before definitions were stored)."""
    lists: dict[str, list[str]] = {name: [] for name in DETECTION_LISTS}
    by_judgement = {judgement: name for name, judgement in DETECTION_LISTS.items()}
    for option in options:
        judgement = detection_judgement(option)
        if judgement is not None:
            lists[by_judgement[judgement]].append(option)
    return {"role": DETECTION, **lists}


def detection_judge(scoring: Mapping[str, Any]) -> Callable[[str], str | None]:
    """The answer -> judgement map of a detection definition: an answer in one of its
    lists gets that list's judgement, any other answer None (not scored). A definition
    without lists maps by words (:func:`detection_judgement`)."""
    if not any(name in scoring for name in DETECTION_LISTS):
        return detection_judgement
    table = {
        str(option): judgement
        for name, judgement in DETECTION_LISTS.items()
        for option in scoring.get(name, [])
    }

    def judge(answer: str) -> str | None:
        return table.get(str(answer).strip())

    return judge


def scoring_errors(
    *, scoring: Any, kind: str, scope: str, choices: Iterable[str] | None
) -> list[str]:
    """Why ``scoring`` is not a valid definition for a question of this kind, scope and
    options (empty when it is)."""
    if scoring in ({}, None):
        return []
    if not isinstance(scoring, dict):
        return ['Scoring must be a JSON object such as {"role": "credible"}, or {}.']
    role = scoring.get("role")
    if role not in ROLES:
        return [f"Scoring role must be one of {', '.join(ROLES)}; got {role!r}."]
    errors: list[str] = []
    if scope != _PER_ARTICLE:
        errors.append(f"Scoring role {role!r} needs a question asked about each article.")
    allowed = {"role"} | (set(DETECTION_LISTS) if role == DETECTION else set())
    extra = sorted(set(scoring) - allowed)
    if extra:
        errors.append(f"Scoring for role {role!r} has unknown field(s): {', '.join(extra)}.")
    if role == CREDIBLE and kind != _BINARY:
        errors.append("Scoring role 'credible' needs a yes/no question.")
    if role == CREDIBILITY_ITEM and kind not in _NUMERIC:
        errors.append("Scoring role 'credibility_item' needs a rating-scale question.")
    if role == DETECTION:
        errors.extend(_detection_errors(scoring, kind, list(choices or [])))
    return errors


# Complexity kept: one flat list of independent checks of a scoring definition.
def _detection_errors(scoring: Mapping[str, Any], kind: str, options: list[str]) -> list[str]:  # noqa: C901
    given = [name for name in DETECTION_LISTS if name in scoring]
    if not given:
        if kind != _CHOICE:
            return []
        return ["Scoring role 'detection' needs human, machine and neutral option lists."]
    if kind != _CHOICE:
        return ["Scoring option lists need a single-choice question."]
    errors: list[str] = []
    seen: dict[str, str] = {}
    for name in given:
        values = scoring[name]
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            errors.append(f"Scoring {name!r} must be a list of options.")
            continue
        for value in values:
            if value not in options:
                errors.append(f"Scoring {name!r} option {value!r} is not one of the choices.")
            elif value in seen:
                errors.append(f"Option {value!r} is in both {seen[value]!r} and {name!r}.")
            else:
                seen[value] = name
    if not errors:
        unlisted = [option for option in options if option not in seen]
        if unlisted:
            errors.append(
                "Every choice must be in the human, machine or neutral list; missing: "
                + ", ".join(repr(o) for o in unlisted)
                + "."
            )
        if not scoring.get("human") or not scoring.get("machine"):
            errors.append("Scoring role 'detection' needs a human and a machine option.")
    return errors


def conventional_scoring(
    *, key: str, kind: str, scope: str, choices: Iterable[str] | None
) -> dict[str, Any]:
    """The definition the conventional key implies (what analysis read from the key before
    definitions were stored), or ``{}``."""
    if scope != _PER_ARTICLE:
        return {}
    if key == "credible" and kind == _BINARY:
        return {"role": CREDIBLE}
    if key in CONVENTIONAL_CREDIBILITY_KEYS and kind in _NUMERIC:
        return {"role": CREDIBILITY_ITEM}
    if key in CONVENTIONAL_DETECTION_KEYS:
        options = list(choices or [])
        return detection_definition(options) if options else {"role": DETECTION}
    return {}
