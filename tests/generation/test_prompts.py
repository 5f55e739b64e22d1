"""Prompt builders, on real Wikinews articles and on tricky abbreviations."""

from __future__ import annotations

import json
from datetime import date

import pytest

from generation import cleanup, prompts
from generation.models import GenerationRun
from generation.prompts import SourceText, build_prompt, split_sentences
from generation.services import prompt_build, run_create
from tests.factories import RealArticleFactory
from tests.generation.conftest import ARTICLES


def _rows() -> list[dict[str, str]]:
    with ARTICLES.open(encoding="utf-8") as handle:
        return [json.loads(line) for line, _ in zip(handle, range(12), strict=False)]


@pytest.fixture
def iodine() -> SourceText:
    row = _rows()[1]
    return SourceText(title=row["title"], body=row["body"], published=date(2006, 2, 23))


IODINE_FIRST = (
    "Almost half of all Australian primary school children are mild to moderately iodine "
    "deficient, researchers say."
)


def test_the_prompt_kinds_match_the_model_choices() -> None:
    assert set(prompts.KINDS) == set(GenerationRun.PromptKind.values)


def test_first_sentence_of_a_real_lede(iodine: SourceText) -> None:
    prompt = build_prompt(prompts.FIRST_SENTENCE, iodine)
    assert prompt.text == IODINE_FIRST
    assert prompt.body_prefix == IODINE_FIRST


def test_lede_is_the_first_paragraph(iodine: SourceText) -> None:
    prompt = build_prompt(prompts.LEDE, iodine)
    assert prompt.text.startswith(IODINE_FIRST)
    assert prompt.text.endswith(
        '"the sleeper health issue in Australia", and potentially a very serious one.'
    )
    assert "\n" not in prompt.text
    assert prompt.body_prefix == prompt.text


def test_first_two_paragraphs(iodine: SourceText) -> None:
    prompt = build_prompt(prompts.FIRST_TWO_PARAGRAPHS, iodine)
    first, second = prompt.text.split("\n\n")
    assert first == build_prompt(prompts.LEDE, iodine).text
    assert second.startswith("The results of the Australian National Iodine Nutrition Study")
    assert prompt.body_prefix == prompt.text


def test_headline_and_first_sentence(iodine: SourceText) -> None:
    prompt = build_prompt(prompts.HEADLINE_FIRST_SENTENCE, iodine)
    assert prompt.text == f"Australian children suffering from iodine deficiency\n\n{IODINE_FIRST}"
    assert prompt.body_prefix == IODINE_FIRST


def test_headline_and_lede(iodine: SourceText) -> None:
    prompt = build_prompt(prompts.HEADLINE_LEDE, iodine)
    lede = build_prompt(prompts.LEDE, iodine).text
    assert prompt.text == f"Australian children suffering from iodine deficiency\n\n{lede}"
    assert prompt.body_prefix == lede


def test_headline_and_lede_after_earlier_articles_as_context() -> None:
    rows = _rows()
    pool = [SourceText(r["title"], r["body"], date.fromisoformat(r["date"])) for r in rows[:10]]
    source = pool[9]  # 2011-04-13, NASA
    context = prompts.earlier_articles(source, pool, 2)
    assert [c.published for c in context] == [date(2010, 10, 9), date(2011, 3, 8)]
    prompt = build_prompt(prompts.HEADLINE_LEDE_CONTEXT, source, context)
    blocks = prompt.text.split("\n\n")
    assert blocks[0] == rows[7]["title"]
    assert blocks[1] == rows[7]["body"].split("\n\n")[0]
    assert blocks[2] == rows[8]["title"]
    assert blocks[4] == rows[9]["title"]
    assert blocks[5].startswith("NASA celebrated the launch of the first space shuttle Tuesday")
    assert len(blocks) == 6
    assert prompt.body_prefix == blocks[5]


def test_context_without_earlier_articles_is_the_plain_headline_and_lede(
    iodine: SourceText,
) -> None:
    assert prompts.earlier_articles(iodine, [iodine], 3) == []
    undated = SourceText("T", "Body.", None)
    assert prompts.earlier_articles(undated, [iodine], 3) == []
    assert (
        build_prompt(prompts.HEADLINE_LEDE_CONTEXT, iodine).text
        == build_prompt(prompts.HEADLINE_LEDE, iodine).text
    )


def test_an_unknown_kind_is_refused(iodine: SourceText) -> None:
    with pytest.raises(ValueError, match='Unknown prompt kind "whole_article"'):
        build_prompt("whole_article", iodine)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "Mr. Smith met Dr. Jones on Jan. 5. They talked.",
            ["Mr. Smith met Dr. Jones on Jan. 5.", "They talked."],
        ),
        (
            "He moved to the U.S. Congress in 2001. It was cold.",
            ["He moved to the U.S. Congress in 2001.", "It was cold."],
        ),
        (
            "The team flew to Washington D.C. The trip took a day.",
            ["The team flew to Washington D.C.", "The trip took a day."],
        ),
        (
            "John F. Kennedy was shot at 12:30 p.m. in Dallas. It was 1963.",
            ["John F. Kennedy was shot at 12:30 p.m. in Dallas.", "It was 1963."],
        ),
        ('"Why?" she asked. He left.', ['"Why?" she asked.', "He left."]),
        ('He said "Stop." Then he left.', ['He said "Stop."', "Then he left."]),
        ("Shares rose 3.5 percent. Good!", ["Shares rose 3.5 percent.", "Good!"]),
        ("No end here", ["No end here"]),
        (
            "He wore No. 5 and said no. Then he left.",
            ["He wore No. 5 and said no.", "Then he left."],
        ),
        ("Wait... what? Yes.", ["Wait... what?", "Yes."]),
    ],
)
def test_sentence_splitting_survives_abbreviations_and_quotes(
    text: str, expected: list[str]
) -> None:
    assert split_sentences(text) == expected


def test_first_sentence_of_a_lede_with_titles_and_initials() -> None:
    source = SourceText("T", "Sen. J. R. Doe (D.) spoke. He won.\n\nMore.")
    assert build_prompt(prompts.FIRST_SENTENCE, source).text == "Sen. J. R. Doe (D.) spoke."


@pytest.mark.django_db
def test_prompt_build_takes_the_k_latest_earlier_real_articles_oldest_first() -> None:
    old = RealArticleFactory.create(title="Old", published=date(2020, 1, 1))
    mid = RealArticleFactory.create(title="Mid", published=date(2020, 2, 1))
    late = RealArticleFactory.create(title="Late", published=date(2020, 3, 1))
    RealArticleFactory.create(title="After", published=date(2020, 5, 1))
    source = RealArticleFactory.create(
        title="Now", body="Now it is.\n\nMore.", published=date(2020, 4, 1)
    )
    prompt, ids = prompt_build(
        article=source, kind=GenerationRun.PromptKind.HEADLINE_LEDE_CONTEXT, context_articles=2
    )
    assert ids == [mid.pk, late.pk]
    assert prompt.text == f"Mid\n\n{mid.lede}\n\nLate\n\n{late.lede}\n\nNow\n\nNow it is."
    assert old.pk not in ids


@pytest.mark.django_db
def test_context_articles_need_the_context_prompt_kind(tiny_model_name: str) -> None:
    from django.core.exceptions import ValidationError

    article = RealArticleFactory.create()
    with pytest.raises(ValidationError, match="only used by the headline_lede_context"):
        run_create(model_name=tiny_model_name, source_articles=[article], context_articles=2)
    assert not GenerationRun.objects.exists()


@pytest.mark.django_db
def test_a_context_run_stores_its_prompt_context_and_length_budget(tiny_model_name: str) -> None:
    from generation.services import run_execute

    earlier = RealArticleFactory.create(title="Before", published=date(2021, 1, 1))
    source = RealArticleFactory.create(
        title="Now", body="Now it is here.\n\n" + "More words. " * 30, published=date(2021, 2, 1)
    )
    run = run_create(
        model_name=tiny_model_name,
        source_articles=[source],
        prompt_kind=GenerationRun.PromptKind.HEADLINE_LEDE_CONTEXT,
        context_articles=3,
        max_new_tokens=6,
    )
    run_execute(run=run, progress=False)
    sample = run.samples.get()
    assert sample.prompt == f"Before\n\n{earlier.lede}\n\nNow\n\nNow it is here."
    assert sample.settings["context_article_ids"] == [earlier.pk]
    assert sample.settings["prompt_body"] == "Now it is here."
    assert sample.word_budget == source.word_count - 4  # the prepended lede's words
    assert sample.cleanup_version == cleanup.CLEANUP_VERSION == "3"
    assert "too_short" in sample.flags  # six new tokens at most
