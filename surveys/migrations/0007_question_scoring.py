"""Question.scoring, filled for existing questions from the key conventions analysis read
until now, so existing studies analyse exactly as before.

The rules are copied here (not imported) so that later changes to surveys.scoring do not
change what this migration did.
"""

from __future__ import annotations

from typing import Any

from django.db import migrations, models

_CREDIBILITY_KEYS = ("believable", "accurate", "clear")
# In the order analysis looked for them: only the first one a study has was scored.
_DETECTION_KEYS = ("detection", "written_by", "written_by_4")


def _judgement(answer: str) -> str | None:
    # analysis.stats.detection_judgement as it was when definitions were introduced, with
    # one correction: the 5-point scale's midpoint ("Equally likely ...") is neutral; the
    # old rule read it as a machine judgement because it names a machine.
    text = str(answer).strip().lower().replace("\u2019", "'")
    if not text:
        return None
    # "Equally likely written by a human or a machine" is the 5-point scale's midpoint:
    # neutral, though it names a machine.
    unsure = ("know", "unsure", "not sure", "neither", "equally")
    if any(word in text for word in unsure):
        return "neutral"
    if "machine" in text or "computer" in text or "ai" in text.split():
        return "machine"
    if "human" in text or "person" in text:
        return "human"
    return "neutral"


def _detection(options: list[str]) -> dict[str, Any]:
    if not options:
        return {"role": "detection"}  # no options: answers are mapped by their words
    lists: dict[str, list[str]] = {"human": [], "machine": [], "neutral": []}
    for option in options:
        name = _judgement(option)
        if name is not None:
            lists[name].append(option)
    return {"role": "detection", **lists}


def fill_scoring(apps: Any, schema_editor: Any) -> None:
    Question = apps.get_model("surveys", "Question")
    per_article = Question.objects.filter(scope="article")
    per_article.filter(key="credible", kind="binary").update(scoring={"role": "credible"})
    per_article.filter(key__in=_CREDIBILITY_KEYS, kind__in=("likert", "slider")).update(
        scoring={"role": "credibility_item"}
    )
    found = per_article.filter(key__in=_DETECTION_KEYS).order_by("study_id", "id")
    first: dict[int, Any] = {}
    for question in found:
        best = first.get(question.study_id)
        if best is None or _DETECTION_KEYS.index(question.key) < _DETECTION_KEYS.index(best.key):
            first[question.study_id] = question
    for question in first.values():
        question.scoring = _detection(list(question.choices or []))
        question.save(update_fields=["scoring"])


def clear_scoring(apps: Any, schema_editor: Any) -> None:
    apps.get_model("surveys", "Question").objects.update(scoring={})


class Migration(migrations.Migration):
    dependencies = [
        ("surveys", "0006_participant_comprehension_tries"),
    ]

    operations = [
        migrations.AddField(
            model_name="question",
            name="scoring",
            field=models.JSONField(
                blank=True,
                default=dict,
                help_text='How analysis scores this question; {} = not scored. {"role": '
                '"credible"} (the yes/no credibility question), {"role": "credibility_item"} '
                "(one of the three 1-4 items of the Kreps credibility index), or "
                '{"role": "detection", "human": [...], "machine": [...], "neutral": [...]} '
                "(human or machine?, each choice in one list).",
            ),
        ),
        migrations.RunPython(fill_scoring, clear_scoring),
    ]
