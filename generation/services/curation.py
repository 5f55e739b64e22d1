"""Curation: quality flags, a reviewer's approve / reject / rank, and selection of
stimuli from a run's samples."""

from __future__ import annotations

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from generation import cleanup, selection
from generation.models import GenerationRun, Sample
from surveys.models import Article, content_hash


def _flag_input(sample: Sample, key: int) -> selection.FlagInput:
    return selection.FlagInput(
        key=key,
        text=sample.clean_text,
        budget=sample.word_budget,
        source_body=sample.source_article.body,
        collapsed="collapse_repetition" in (sample.cleanup_steps or []),
    )


def run_flag(*, run: GenerationRun) -> int:
    """Recompute the quality flags of every sample of the run, near-duplicates among the
    run's samples included. Returns how many samples' flags changed."""
    samples = list(Sample.objects.filter(run=run).select_related("source_article").order_by("id"))
    flags = selection.quality_flags([_flag_input(s, s.pk) for s in samples])
    changed = [s for s in samples if s.flags != flags[s.pk]]
    for sample in changed:
        sample.flags = flags[sample.pk]
    Sample.objects.bulk_update(changed, ["flags"])
    return len(changed)


def sample_prompt_body(*, sample: Sample) -> str:
    """The real opening a sample's article begins with when its run prepends it."""
    return _prompt_in_body(sample)


def _prompt_in_body(sample: Sample) -> str:
    """The part of the prompt that belongs in the article's text (not the headline, not
    context articles). Recorded with samples since clean-up v2; derived for older ones."""
    recorded = (sample.settings or {}).get("prompt_body")
    if isinstance(recorded, str):
        return recorded.strip()
    if sample.run.prompt_kind == GenerationRun.PromptKind.HEADLINE_LEDE:
        return sample.prompt.split("\n\n", 1)[-1].strip()
    return sample.prompt.strip()


@transaction.atomic
def sample_approve(
    *, sample: Sample, reviewer: str = "", selected_by: str = selection.CURATED
) -> Article:
    """Turn a sample into a generated article of the stimulus pool; idempotent.

    The article's text is the real opening of the prompt (when the run prepends it)
    followed by the cleaned continuation, under the source article's headline.
    ``selected_by`` records the selection mode (a curator's approval by default).
    Approving an approved sample returns its article.
    Raises ValidationError for a sample with no usable text or whose text is already in
    the pool.
    """
    sample = (
        Sample.objects.select_for_update().select_related("run", "source_article").get(pk=sample.pk)
    )
    if sample.article_id is not None:
        article = sample.article
        assert article is not None
        if sample.review != Sample.Review.APPROVED:
            sample.selected_by = selected_by
            _review(sample, Sample.Review.APPROVED, reviewer, extra=["selected_by"])
        return article
    continuation = sample.clean_text.strip()
    if not continuation:
        raise ValidationError(
            f"Sample {sample.pk} has no complete sentence after clean-up; reject it instead."
        )
    source = sample.source_article
    body = cleanup.compose_article(
        prefix=_prompt_in_body(sample),
        continuation=continuation,
        prepend_lede=sample.run.prepend_lede,
    )
    duplicate = Article.objects.filter(content_hash=content_hash(source.title, body)).first()
    if duplicate is not None:
        raise ValidationError(
            f"Sample {sample.pk} has the same text as article {duplicate.pk} already in the pool."
        )
    article = Article.objects.create(
        origin=Article.Origin.GENERATED,
        title=source.title,
        body=body,
        source_article=source,
        model_name=sample.run.model_name[:200],
        outlet="",
        team_id=sample.run.team_id,  # the run's team owns the stimulus made from it
    )
    sample.article = article
    sample.selected_by = selected_by
    _review(sample, Sample.Review.APPROVED, reviewer, extra=["article", "selected_by"])
    return article


@transaction.atomic
def sample_reject(*, sample: Sample, reviewer: str = "") -> Sample:
    """Mark a sample rejected. A previously approved sample loses its article, unless
    the article is already in a study, which would change data under participants."""
    sample = Sample.objects.select_for_update().get(pk=sample.pk)
    article = sample.article
    if article is not None:
        if article.conditions.exists() or article.trials.exists():
            raise ValidationError(
                f"Sample {sample.pk} is article {article.pk}, which is already in a study; "
                "remove it from the study's conditions first."
            )
        sample.article = None
        sample.selected_by = ""
        _review(sample, Sample.Review.REJECTED, reviewer, extra=["article", "selected_by"])
        article.delete()
        return sample
    _review(sample, Sample.Review.REJECTED, reviewer)
    return sample


def sample_rank(*, sample: Sample, rank: int | None) -> Sample:
    """Set a curator's rank (1 = best among the prompt's samples; None clears it)."""
    if rank is not None and rank < 1:
        raise ValidationError("A rank is a whole number of at least 1.")
    Sample.objects.filter(pk=sample.pk).update(rank=rank)
    sample.rank = rank
    return sample


@dataclass(frozen=True)
class SelectionOutcome:
    mode: str
    approved: list[int]  # sample ids that are stimuli now
    problems: list[str]  # samples chosen but not approvable, and why
    empty: list[int]  # samples never eligible: no complete sentence after clean-up


def run_select(
    *,
    run: GenerationRun,
    mode: str,
    k: int | None = None,
    seed: int | None = None,
    reviewer: str = "",
) -> SelectionOutcome:
    """Make stimuli of a run's samples by a selection mode (``selection.MODES``).

    ``all``: every usable sample; ``random_k``: ``k`` per prompt drawn with ``seed``;
    ``closest_length``: per prompt, the one whose cleaned continuation is nearest the
    real article's length (less the prepended opening); ``curated``: the samples a
    curator approved, by rank, the first ``k`` per prompt when ``k`` is given. Chosen
    samples are approved with the mode recorded on them; the others are left as they
    are (pending ones stay pending). Rejected samples and samples with no text are never
    chosen. Raises ValidationError, writing nothing, for a bad mode or k.
    """
    if mode not in selection.MODES:
        raise ValidationError(
            f'Unknown selection mode "{mode}"; use one of {", ".join(selection.MODES)}.'
        )
    if k is not None and k < 1:
        raise ValidationError("k must be at least 1.")
    if mode == selection.RANDOM_K and k is None:
        raise ValidationError("random_k needs k, the number of samples per prompt.")
    samples = list(
        Sample.objects.filter(run=run).select_related("run", "source_article").order_by("id")
    )
    candidates = []
    for sample in samples:
        prefix = _prompt_in_body(sample)
        target = cleanup.word_budget(
            length_match=GenerationRun.LengthMatch.SOURCE,
            source_words=sample.source_article.word_count,
            prefix_words=cleanup.word_count(prefix),
            prepend_lede=run.prepend_lede,
        )
        candidates.append(
            selection.Candidate(
                key=sample.pk,
                prompt=sample.source_article_id,
                words=cleanup.word_count(sample.clean_text),
                target_words=target,
                usable=bool(sample.clean_text.strip()) and sample.review != Sample.Review.REJECTED,
                approved=sample.review == Sample.Review.APPROVED,
                rank=sample.rank,
            )
        )
    chosen = selection.select(mode, candidates, k=k, seed=seed)
    approved, problems = [], []
    for sample_id in chosen:
        try:
            sample_approve(sample=Sample(pk=sample_id), reviewer=reviewer, selected_by=mode)
        except ValidationError as error:
            problems.extend(error.messages)
            continue
        approved.append(sample_id)
    if mode == selection.CURATED:
        Sample.objects.filter(pk__in=approved).update(selected_by=mode)
    empty = [s.pk for s in samples if not s.clean_text.strip()]
    return SelectionOutcome(mode=mode, approved=approved, problems=problems, empty=empty)


def _review(sample: Sample, review: str, reviewer: str, extra: list[str] | None = None) -> None:
    sample.review = review
    sample.reviewed_by = reviewer[:150]
    sample.reviewed_at = timezone.now()
    sample.save(update_fields=["review", "reviewed_by", "reviewed_at", *(extra or [])])
