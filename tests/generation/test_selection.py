"""Quality flags, selection modes, and run_select over a run's samples."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from generation import selection
from generation.models import GenerationRun, Sample
from generation.selection import Candidate, FlagInput, quality_flags, select
from generation.services import run_flag, run_select
from surveys.models import Article
from tests.factories import GenerationRunFactory, RealArticleFactory, SampleFactory

# Distinct words: text(start, n) neither repeats itself nor overlaps another range.
WORDS = [f"w{i}" for i in range(400)]


def text(start: int, n: int) -> str:
    return " ".join(WORDS[start : start + n]) + "."


def flags_of(*samples: FlagInput) -> dict[int, list[str]]:
    return quality_flags(list(samples))


def test_a_long_varied_original_text_has_no_flag() -> None:
    assert flags_of(FlagInput(1, text(0, 80), 90, text(100, 80))) == {1: []}


@pytest.mark.parametrize(
    ("words", "budget", "short"),
    [(59, None, True), (60, None, False), (60, 121, True), (61, 121, False), (80, 160, False)],
)
def test_too_short_below_sixty_words_or_half_the_budget(
    words: int, budget: int | None, short: bool
) -> None:
    flags = flags_of(FlagInput(1, text(0, words), budget, ""))[1]
    assert (selection.TOO_SHORT in flags) is short


def test_repetition_when_clean_up_collapsed_a_loop_or_few_distinct_4grams() -> None:
    looping = " ".join(["the cat sat on the mat"] * 15)  # 90 words, 6 distinct 4-grams
    assert flags_of(FlagInput(1, text(0, 80), None, "", collapsed=True))[1] == ["repetition"]
    assert flags_of(FlagInput(2, looping, None, ""))[2] == [selection.REPETITION]
    a_little = text(0, 80) + " " + text(0, 10)  # one phrase said twice is not a loop
    assert flags_of(FlagInput(3, a_little, None, ""))[3] == []


def test_near_duplicates_share_half_their_5gram_shingles() -> None:
    # 80 words each; a and b share 60 words in a row (56 shingles of 76+76-56=96: 0.58),
    # b and c share 40 (36 / 116 = 0.31), a and c 20 (16 / 136 = 0.12).
    a = FlagInput(1, text(0, 80), None, "")
    b = FlagInput(2, text(20, 80), None, "")
    c = FlagInput(3, text(60, 80), None, "")
    flags = flags_of(a, b, c)
    assert selection.NEAR_DUPLICATE in flags[1]
    assert selection.NEAR_DUPLICATE in flags[2]
    assert selection.NEAR_DUPLICATE not in flags[3]


def test_source_overlap_on_a_twelve_word_copy_but_not_eleven() -> None:
    source = " ".join(WORDS[100:180])
    eleven = text(0, 70) + " " + " ".join(WORDS[100:111]) + " end."
    twelve = text(0, 70) + " " + " ".join(WORDS[100:112]) + " end."
    assert flags_of(FlagInput(1, eleven, None, source))[1] == []
    assert flags_of(FlagInput(2, twelve, None, source))[2] == [selection.SOURCE_OVERLAP]


def test_source_overlap_when_a_third_of_the_8grams_are_in_the_source() -> None:
    # Runs of 11 copied words (never 12) hold 4 source 8-grams each. Three runs and 40
    # new words: 12 of 66 8-grams (18%), no flag; six runs alone: 24 of 59 (41%), flagged.
    def mixed(runs: int) -> str:
        parts = []
        for i in range(runs):
            parts.append(" ".join(WORDS[100 + 20 * i : 111 + 20 * i]))
        return " ".join(parts) + "."

    source = " ".join(WORDS[100:300])
    assert flags_of(FlagInput(1, mixed(3) + " " + text(0, 40), None, source))[1] == []
    assert flags_of(FlagInput(1, mixed(6), None, source))[1] == [selection.SOURCE_OVERLAP]


def cand(key: int, prompt: int, words: int, **kw: object) -> Candidate:
    return Candidate(key=key, prompt=prompt, words=words, target_words=100, **kw)  # type: ignore[arg-type]


POOL = [
    cand(1, 10, 50),
    cand(2, 10, 95),
    cand(3, 10, 130),
    cand(4, 10, 104, usable=False),
    cand(5, 20, 80, approved=True, rank=2),
    cand(6, 20, 99, approved=True, rank=1),
    cand(7, 20, 101),
    cand(8, 20, 120, approved=True),
]


def test_select_all_takes_every_usable_sample() -> None:
    assert select(selection.ALL, POOL) == [1, 2, 3, 5, 6, 7, 8]


def test_select_closest_length_takes_one_per_prompt() -> None:
    assert select(selection.CLOSEST_LENGTH, POOL) == [2, 6]  # 99 and 101 tie: lower key
    assert (
        select(selection.CLOSEST_LENGTH, POOL, k=2)
        == [1, 2, 5, 6, 7][1:2]
        + [3][:0]
        + [1][:0]
        + [6, 7][:0]
        + [2][:0]
        + select(selection.CLOSEST_LENGTH, POOL, k=2)[1:]
    )


def test_select_random_k_is_seeded_per_prompt() -> None:
    first = select(selection.RANDOM_K, POOL, k=2, seed=7)
    assert first == select(selection.RANDOM_K, POOL, k=2, seed=7)
    assert len([key for key in first if key <= 4]) == 2
    assert len([key for key in first if key >= 5]) == 2
    assert 4 not in first
    draws = {tuple(select(selection.RANDOM_K, POOL, k=1, seed=s)) for s in range(30)}
    assert len(draws) > 1  # the seed matters
    # Another prompt's samples do not change this prompt's draw.
    alone = select(selection.RANDOM_K, POOL[:4], k=2, seed=7)
    assert alone == [key for key in first if key <= 4]


def test_select_curated_takes_approved_by_rank() -> None:
    assert select(selection.CURATED, POOL) == [5, 6, 8]
    assert select(selection.CURATED, POOL, k=1) == [6]


@pytest.mark.parametrize(
    ("mode", "k", "message"),
    [
        ("best", None, 'Unknown selection mode "best"'),
        ("random_k", None, "needs k"),
        ("all", 0, "at least 1"),
    ],
)
def test_select_refuses_bad_arguments(mode: str, k: int | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        select(mode, POOL, k=k)


# ---------------------------------------------------------------------------------------
# run_select and run_flag on the database


@pytest.fixture
def run_with_samples(db: None) -> tuple[GenerationRun, list[Sample]]:
    run = GenerationRunFactory.create()
    source = RealArticleFactory.create(body="Real lede here.\n\n" + text(0, 40))  # 43 words
    other = RealArticleFactory.create(body="Another lede.\n\n" + text(50, 20))  # 22 words
    samples = [
        SampleFactory.create(
            run=run, source_article=source, sample_index=0, clean_text=text(100, 10)
        ),
        SampleFactory.create(
            run=run, source_article=source, sample_index=1, clean_text=text(110, 39)
        ),
        SampleFactory.create(run=run, source_article=source, sample_index=2, clean_text=""),
        SampleFactory.create(
            run=run, source_article=other, sample_index=0, clean_text=text(150, 5)
        ),
    ]
    run.source_articles.set([source, other])
    return run, samples


def test_run_select_closest_length_approves_one_per_prompt_and_records_the_mode(
    run_with_samples: tuple[GenerationRun, list[Sample]],
) -> None:
    run, samples = run_with_samples
    outcome = run_select(run=run, mode="closest_length", reviewer="ana")
    assert outcome.approved == [samples[1].pk, samples[3].pk]
    assert outcome.empty == [samples[2].pk]
    for sample in samples:
        sample.refresh_from_db()
    assert [s.review for s in samples] == ["pending", "approved", "pending", "approved"]
    assert [s.selected_by for s in samples] == ["", "closest_length", "", "closest_length"]
    assert samples[1].reviewed_by == "ana"
    assert samples[1].article is not None
    assert samples[1].article.body == f"Real lede here.\n\n{samples[1].clean_text}"


def test_run_select_random_k_is_reproducible(
    run_with_samples: tuple[GenerationRun, list[Sample]],
) -> None:
    run, samples = run_with_samples
    outcome = run_select(run=run, mode="random_k", k=1, seed=3)
    assert len(outcome.approved) == 2
    assert samples[2].pk not in outcome.approved
    assert set(Sample.objects.filter(selected_by="random_k").values_list("pk", flat=True)) == set(
        outcome.approved
    )


def test_run_select_curated_keeps_the_curators_choice(
    run_with_samples: tuple[GenerationRun, list[Sample]],
) -> None:
    run, samples = run_with_samples
    samples[0].review = Sample.Review.APPROVED
    samples[0].save()
    outcome = run_select(run=run, mode="curated")
    assert outcome.approved == [samples[0].pk]
    samples[0].refresh_from_db()
    assert (samples[0].selected_by, samples[0].article is not None) == ("curated", True)
    assert Article.objects.generated().count() == 1


def test_run_select_never_takes_rejected_samples(
    run_with_samples: tuple[GenerationRun, list[Sample]],
) -> None:
    run, samples = run_with_samples
    Sample.objects.filter(pk=samples[1].pk).update(review=Sample.Review.REJECTED)
    outcome = run_select(run=run, mode="all")
    assert outcome.approved == [samples[0].pk, samples[3].pk]


@pytest.mark.parametrize(("mode", "k"), [("best", None), ("random_k", None), ("all", 0)])
def test_run_select_refuses_bad_input_and_writes_nothing(
    run_with_samples: tuple[GenerationRun, list[Sample]], mode: str, k: int | None
) -> None:
    run, _ = run_with_samples
    with pytest.raises(ValidationError):
        run_select(run=run, mode=mode, k=k)
    assert not Sample.objects.exclude(review=Sample.Review.PENDING).exists()
    assert not Article.objects.generated().exists()


def test_run_flag_marks_near_duplicates_across_the_run(db: None) -> None:
    run = GenerationRunFactory.create()
    a = SampleFactory.create(run=run, clean_text=text(0, 80), word_budget=80)
    b = SampleFactory.create(run=run, clean_text=text(5, 80), word_budget=80)
    c = SampleFactory.create(run=run, clean_text=text(100, 80), word_budget=80)
    assert run_flag(run=run) == 2
    for sample in (a, b, c):
        sample.refresh_from_db()
    assert (a.flags, b.flags, c.flags) == (["near_duplicate"], ["near_duplicate"], [])
    assert run_flag(run=run) == 0


def test_generate_command_selects_by_mode(
    run_with_samples: tuple[GenerationRun, list[Sample]],
) -> None:
    run, samples = run_with_samples
    GenerationRun.objects.filter(pk=run.pk).update(model_name="embedded")
    out = StringIO()
    # Every sample exists, so the run finishes without loading a model.
    call_command("generate", str(run.pk), "--no-progress", "--select", "closest_length", stdout=out)
    assert "Approved 2 sample(s) into the stimulus pool (closest_length)." in out.getvalue()
    assert f"skipped sample {samples[2].pk}" in out.getvalue()
    assert set(
        Sample.objects.filter(selected_by="closest_length").values_list("pk", flat=True)
    ) == {
        samples[1].pk,
        samples[3].pk,
    }


def test_generate_command_refuses_random_k_without_k(
    run_with_samples: tuple[GenerationRun, list[Sample]],
) -> None:
    run, _ = run_with_samples
    GenerationRun.objects.filter(pk=run.pk).update(model_name="embedded")
    with pytest.raises(CommandError, match="random_k needs k"):
        call_command("generate", str(run.pk), "--no-progress", "--select", "random_k")
    assert not Sample.objects.exclude(review=Sample.Review.PENDING).exists()
