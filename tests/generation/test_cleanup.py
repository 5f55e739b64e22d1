"""The clean-up pipeline, step by step, on hand-written inputs."""

from __future__ import annotations

import pytest

from generation import cleanup
from generation.engine import END_MARKERS


@pytest.mark.parametrize("marker", END_MARKERS)
def test_cut_at_end_marker_drops_everything_after_any_engine_marker(marker: str) -> None:
    assert cleanup.cut_at_end_marker(f"Kept text.{marker}Next article. {marker} more") == (
        "Kept text."
    )


def test_normalise_paragraphs_makes_each_line_a_paragraph() -> None:
    raw = " First  line\x00 here.\nSecond line.\n\n\n  Third.\t"
    assert cleanup.normalise_paragraphs(raw) == "First line here.\n\nSecond line.\n\nThird."


def test_strip_boilerplate_drops_web_furniture_only() -> None:
    text = "\n\n".join(
        [
            "The council met on Monday.",
            "Advertisement",
            "ADVERTISEMENT",
            "Sign up for our daily newsletter to get the news first.",
            "Click here to read the full report.",
            "Follow us on Twitter @news",
            "Read more: Council approves budget",
            "Copyright 2019 The Associated Press. All rights reserved.",
            "© 2020 News Corp",
            "Image: The council chamber.",
            "Photo: Jane Doe/Reuters",
            "Related: Mayor resigns",
            "It approved the plan, which critics said would click here and there.",
        ]
    )
    assert cleanup.strip_boilerplate(text) == (
        "The council met on Monday.\n\n"
        "It approved the plan, which critics said would click here and there."
    )


def test_collapse_repetition_keeps_a_repeated_paragraph_once() -> None:
    text = "One thing.\n\nThe same again.\n\nThe same again.\n\nThe end."
    assert cleanup.collapse_repetition(text) == "One thing.\n\nThe same again.\n\nThe end."


def test_collapse_repetition_keeps_a_repeated_sentence_once() -> None:
    text = "He said no. He said no. He said no. Then he left."
    assert cleanup.collapse_repetition(text) == "He said no. Then he left."


def test_collapse_repetition_cuts_an_ngram_loop_at_its_second_occurrence() -> None:
    loop = "the price of oil rose again on world markets and"
    text = f"Markets were busy. {loop} {loop} {loop} then fell."
    assert cleanup.collapse_repetition(text) == f"Markets were busy. {loop}"


def test_collapse_repetition_leaves_a_phrase_seen_twice() -> None:
    phrase = "the price of oil rose again on world markets"
    text = f"First, {phrase}. Later, {phrase}."
    assert cleanup.collapse_repetition(text) == text


def test_drop_partial_sentence() -> None:
    assert cleanup.drop_partial_sentence("One. Two is here.\n\nThree and then") == (
        "One. Two is here."
    )
    assert cleanup.drop_partial_sentence('He said "yes." And') == 'He said "yes."'
    assert cleanup.drop_partial_sentence("Mr. Smith went to Dr") == ""


def test_truncate_to_budget_cuts_at_the_nearest_sentence_end() -> None:
    text = "One two three four. Five six seven.\n\nEight nine ten eleven twelve."
    # Sentence ends at 4, 7 and 12 words.
    assert cleanup.truncate_to_budget(text, 5) == "One two three four."
    assert cleanup.truncate_to_budget(text, 6) == "One two three four. Five six seven."
    assert cleanup.truncate_to_budget(text, 10) == text
    assert cleanup.truncate_to_budget(text, 9) == "One two three four. Five six seven."
    assert cleanup.truncate_to_budget(text, 1) == "One two three four."
    assert cleanup.truncate_to_budget(text, None) == text
    assert cleanup.truncate_to_budget(text, 50) == text


def test_the_pipeline_runs_the_steps_in_order_and_names_those_that_changed_the_text() -> None:
    raw = (
        " The mayor spoke.\nAdvertisement\nShe said yes. She said yes.\n"
        "Voters cheered loudly. Others left early. Then<|endoftext|>Another story."
    )
    result = cleanup.clean(raw, budget=7)  # sentence ends at 3, 6, 9 and 12 words
    assert result.text == "The mayor spoke.\n\nShe said yes."
    assert result.steps == (
        "cut_at_end_marker",
        "normalise_paragraphs",
        "strip_boilerplate",
        "collapse_repetition",
        "drop_partial_sentence",
        "truncate_to_budget",
    )
    assert result.version == cleanup.CLEANUP_VERSION == "3"


def test_clean_text_needs_no_step() -> None:
    result = cleanup.clean("A clean sentence.")
    assert (result.text, result.steps) == ("A clean sentence.", ())


@pytest.mark.parametrize(
    ("match", "prepend", "fixed", "expected"),
    [
        ("source", True, None, 80),
        ("source", False, None, 100),
        ("fixed", True, 150, 150),
        ("none", True, None, None),
    ],
)
def test_word_budget(match: str, prepend: bool, fixed: int | None, expected: int | None) -> None:
    budget = cleanup.word_budget(
        length_match=match, source_words=100, prefix_words=20, prepend_lede=prepend, fixed=fixed
    )
    assert budget == expected


def test_word_budget_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="fixed length match needs a word budget"):
        cleanup.word_budget(length_match="fixed", source_words=1, prefix_words=0, prepend_lede=True)
    with pytest.raises(ValueError, match='Unknown length match "half"'):
        cleanup.word_budget(length_match="half", source_words=1, prefix_words=0, prepend_lede=True)


def test_compose_article_optionally_begins_with_the_real_lede() -> None:
    assert cleanup.compose_article(
        prefix="Real lede.", continuation="Made up.", prepend_lede=True
    ) == ("Real lede.\n\nMade up.")
    assert cleanup.compose_article(
        prefix="Real lede.", continuation="Made up.", prepend_lede=False
    ) == ("Made up.")


def test_broken_utf8_and_stored_nul_are_not_article_text():
    # A NUL is stored as U+FFFD (PostgreSQL text cannot hold NUL): cleaning the stored
    # raw text must give what cleaning the model's output gave.
    model_output = "The council met on Monday.\x00 It voted to close the bridge."
    stored = model_output.replace("\x00", "\ufffd")
    assert cleanup.clean(stored, budget=None) == cleanup.clean(model_output, budget=None)
    assert "\ufffd" not in cleanup.clean("A \ufffdbroken word. Then more.", budget=None).text
