"""Writing a study as a file: its design and articles with their provenance, as YAML.

The file is a pure function of the design: keys in a fixed order (JSON values sorted),
articles in content-hash order and named by a prefix of their content hash, runs
numbered in the order their articles appear, and nothing that differs between databases
or over time (no row ids, no creation times, no team). Exporting the same study twice,
or the import of its export in another database, gives the same bytes.

Generation provenance is read through the reverse relation ``Article.sample`` (the
generation app's ``Sample``), so that ``surveys`` does not import ``generation``.
"""

from __future__ import annotations

import json
from typing import Any

import yaml
from django.core.exceptions import ObjectDoesNotExist

from surveys.models import Article, Study
from surveys.services import study_design_hash
from surveys.studyfile.schema import FORMAT

REF_LENGTH = 16

# Study fields written to the file, in this order (``texts`` and ``panel`` are nested).
# tests/surveys/test_studyfile.py fails when a Study field is neither here nor in
# NOT_EXPORTED, so that a new field is a decision, not an omission.
STUDY_FIELDS = (
    "slug",
    "title",
    "design",
    "articles_per_participant",
    "seed",
    "reservation_minutes",
    "comprehension_attempts",
    "require_panel_id",
    "flagged_hold_no_place",
    "multiple_comparisons",
    "hypotheses",
    "primary_comparison",
    "original_citation",
    "equivalence_bound",
)
TEXT_FIELDS = {
    "consent": "consent_text",
    "instructions": "instructions_text",
    "debrief": "debrief_text",
}
PANEL_FIELDS = (
    "completion_code",
    "completion_url",
    "failed_check_code",
    "screened_out_code",
    "withdrawn_code",
)
NOT_EXPORTED = {
    # Where the study lives in this database, not what it is.
    "id",
    "team",
    "created_at",
    # Lifecycle: an import is always a draft (exported_from records the state).
    "status",
    "design_hash",
    "launched_at",
    "closed_at",
}
CONDITION_FIELDS = (
    "name",
    "label",
    "is_reference",
    "quota",
    "per_participant",
    "branding",
    "disclaimer",
    "original_rate",
    "original_n",
)
QUESTION_FIELDS = (
    "key",
    "text",
    "kind",
    "scope",
    "position",
    "required",
    "scale_min",
    "scale_max",
    "min_label",
    "max_label",
    "choices",
    "expected_answer",
    "after_article",
    "scoring",
)
RULE_FIELDS = ("kind", "threshold", "question_key", "position")
ARTICLE_FIELDS = (
    "title",
    "lede",
    "body",
    "external_id",
    "outlet",
    "url",
    "published",
    "license",
    "attribution",
    "in_demo_pool",
    "model_name",
)
RUN_FIELDS = (
    "name",
    "model_name",
    "model_identity",
    "prompt_kind",
    "context_articles",
    "length_match",
    "word_budget",
    "prepend_lede",
    "samples_per_prompt",
    "max_new_tokens",
    "min_new_tokens",
    "top_k",
    "top_p",
    "temperature",
    "repetition_penalty",
    "seed",
    "batch_size",
    "dtype",
)
SAMPLE_FIELDS = (
    "sample_index",
    "seed",
    "prompt",
    "settings",
    "raw_text",
    "clean_text",
    "cleanup_version",
    "cleanup_steps",
    "word_budget",
    "flags",
    "selected_by",
    "rank",
    "new_tokens",
    "review",
    "reviewed_by",
)


def _canonical(value: Any) -> Any:
    """A JSON field's value with its objects' keys sorted (PostgreSQL's jsonb has its own
    key order, SQLite keeps the inserted one)."""
    return json.loads(json.dumps(value, sort_keys=True))


def article_ref(article: Article) -> str:
    """The article's name inside a file: a prefix of its content hash, so the same text
    has the same name in every database."""
    return article.content_hash[:REF_LENGTH]


def _sample_of(article: Article) -> Any:
    try:
        return article.sample
    except ObjectDoesNotExist:
        return None


def _articles(study: Study) -> list[Article]:
    """The conditions' articles and the real articles generated ones were prompted
    with: real first, then generated, each in content-hash order."""
    pks = set(Article.objects.filter(conditions__study=study).values_list("pk", flat=True))
    frontier = set(pks)
    while frontier:
        # Sources of sources too (a chain is rare, and short).
        sources = set(
            Article.objects.filter(pk__in=frontier, source_article__isnull=False).values_list(
                "source_article_id", flat=True
            )
        )
        frontier = sources - pks
        pks |= frontier
    # One query for the articles with their sources, samples and runs.
    articles = Article.objects.filter(pk__in=pks).select_related("source_article", "sample__run")
    return sorted(articles, key=lambda a: (a.origin != Article.Origin.REAL, a.content_hash))


def _article_entry(article: Article, run_refs: dict[int, str]) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "ref": article_ref(article),
        "content_hash": article.content_hash,
        "origin": article.origin,
    }
    for name in ARTICLE_FIELDS:
        value = getattr(article, name)
        entry[name] = value.isoformat() if name == "published" and value else value
    if article.source_article is not None:
        entry["source"] = article_ref(article.source_article)
    sample = _sample_of(article)
    if sample is not None:
        run_refs.setdefault(sample.run_id, f"run-{len(run_refs) + 1}")
        entry["sample"] = {
            "run": run_refs[sample.run_id],
            **{name: _canonical(getattr(sample, name)) for name in SAMPLE_FIELDS},
        }
    return entry


def _design_hash(study: Study) -> str:
    """The frozen hash of a live or closed study; the current design's hash otherwise (a
    draft keeps the hash of its last status change, which later edits make stale)."""
    return study.design_hash if study.is_design_locked else study_design_hash(study=study)


def study_file_data(*, study: Study) -> dict[str, Any]:
    """The study file's content as plain data (what ``study_file_export`` writes)."""
    articles = _articles(study)
    run_refs: dict[int, str] = {}
    runs: dict[int, Any] = {}
    entries = []
    for article in articles:
        entries.append(_article_entry(article, run_refs))
        sample = _sample_of(article)
        if sample is not None:
            runs[sample.run_id] = sample.run
    return {
        "format": FORMAT,
        "exported_from": {"status": study.status, "design_hash": _design_hash(study)},
        "study": {
            **{name: getattr(study, name) for name in STUDY_FIELDS},
            "texts": {key: getattr(study, name) for key, name in TEXT_FIELDS.items()},
            "panel": {name: getattr(study, name) for name in PANEL_FIELDS},
        },
        "conditions": [
            {
                **{
                    ("reference" if n == "is_reference" else n): getattr(c, n)
                    for n in CONDITION_FIELDS
                },
                "articles": sorted(article_ref(a) for a in c.articles.all()),
            }
            for c in study.conditions.order_by("name").prefetch_related("articles")
        ],
        "questions": [
            {name: _canonical(getattr(q, name)) for name in QUESTION_FIELDS}
            for q in study.questions.order_by("scope", "position", "key")
        ],
        "exclusion_rules": [
            {name: getattr(r, name) for name in RULE_FIELDS}
            for r in study.exclusion_rules.order_by("position", "id")
        ],
        "generation_runs": [
            {"ref": ref, **{name: _canonical(getattr(runs[pk], name)) for name in RUN_FIELDS}}
            for pk, ref in run_refs.items()
        ],
        "articles": entries,
    }


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line text, so bodies and prompts read (and diff) as text."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    # PyYAML falls back to a quoted style by itself where a literal block cannot hold
    # the text exactly (trailing spaces, control characters).
    style = "|" if "\n" in value else None
    # str.__str__: the plain text of a str subclass (a model's TextChoices member).
    return dumper.represent_scalar("tag:yaml.org,2002:str", str.__str__(value), style=style)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_multi_representer(str, _represent_str)


def study_file_dump(data: dict[str, Any]) -> str:
    """``data`` as the YAML text of a study file."""
    return yaml.dump(
        data,
        Dumper=_Dumper,
        sort_keys=False,
        allow_unicode=True,
        default_flow_style=False,
        width=100,
    )


def study_file_export(*, study: Study) -> str:
    """The study as the YAML text of a study file: its design (conditions with their
    manipulations, questions with their scoring, checks, exclusion rules, quotas,
    texts) and its articles, real ones with their source and licence, generated ones
    with their sample and run (model identity, prompt, decoding, seed, dtype, batch,
    raw and cleaned text). Participants and answers are not part of it. Callers check
    that the user may see the study."""
    return study_file_dump(study_file_data(study=study))
