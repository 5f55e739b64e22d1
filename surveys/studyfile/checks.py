"""What the schema cannot say about a study file: names unique within it, references
that resolve, the models' own field rules (lengths, slugs, URLs, a question's scoring),
the database's constraints, a free slug, and articles another team owns.

Every check here only reads; ``surveys.studyfile.importer`` writes nothing until this
module finds no error.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db.models import Model

from surveys.models import (
    Article,
    Condition,
    ExclusionRule,
    Question,
    Study,
    Team,
    content_hash,
    first_paragraph,
)
from surveys.studyfile.schema import FileError, ParsedFile

Path_ = list[str | int]


@dataclass
class Checked:
    """A schema-valid file's content, checked: what the importer needs to write it."""

    data: dict[str, Any]
    slug: str
    # Article refs in an order where every source comes before what was made from it.
    article_order: list[str] = field(default_factory=list)
    # Content hash -> pk of the articles already in the database that are reused.
    existing: dict[str, int] = field(default_factory=dict)
    errors: list[FileError] = field(default_factory=list)


def study_values(data: Mapping[str, Any], slug: str) -> dict[str, Any]:
    """Study model field values from the file's ``study`` section."""
    study = data["study"]
    values = {
        k: v for k, v in study.items() if k not in ("texts", "panel") and k in _STUDY_MODEL_FIELDS
    }
    values["slug"] = slug
    values.update({f"{k}_text": v for k, v in study["texts"].items()})
    values.update(study.get("panel", {}))
    return values


_STUDY_MODEL_FIELDS = {f.name for f in Study._meta.concrete_fields}


def condition_values(entry: Mapping[str, Any]) -> dict[str, Any]:
    values = {k: v for k, v in entry.items() if k not in ("reference", "articles")}
    values["is_reference"] = entry.get("reference", False)
    return values


def article_values(entry: Mapping[str, Any]) -> dict[str, Any]:
    values = {
        k: v
        for k, v in entry.items()
        if k not in ("ref", "content_hash", "source", "sample", "published")
    }
    values["published"] = entry.get("published") or None
    if not values.get("lede"):
        values["lede"] = first_paragraph(entry["body"])
    return values


def _field_errors(
    parsed: ParsedFile,
    instance: Model,
    *,
    base: Path_,
    paths: Mapping[str, Path_] | None = None,
    exclude: Iterable[str] = (),
    clean: bool = False,
) -> list[FileError]:
    """The model's own field rules (max lengths, slug and URL validators, choices) and,
    with ``clean``, its clean(), as file errors at the field's line."""
    errors: list[FileError] = []
    try:
        instance.clean_fields(exclude=list(exclude))
        if clean:
            instance.clean()
    except ValidationError as error:
        for name, messages in error.message_dict.items():
            path = (paths or {}).get(name, [*base, name]) if name != "__all__" else base
            errors.extend(parsed.error(path, message) for message in messages)
    return errors


def _duplicates(parsed: ParsedFile, section: str, key: str) -> list[FileError]:
    entries = parsed.data.get(section) or []
    counts = Counter(e[key] for e in entries)
    return [
        parsed.error([section, i, key], f"{e[key]!r} appears more than once in {section}")
        for i, e in enumerate(entries)
        if counts[e[key]] > 1
    ]


def _check_study(parsed: ParsedFile, slug: str) -> list[FileError]:
    data = parsed.data
    paths: dict[str, Path_] = {f"{k}_text": ["study", "texts", k] for k in data["study"]["texts"]}
    paths.update({k: ["study", "panel", k] for k in data["study"].get("panel", {})})
    slug_path: Path_ = ["study", "slug"]
    errors = _field_errors(
        parsed,
        Study(**study_values(data, slug)),
        base=["study"],
        paths=paths,
        exclude=["team", "slug"],
    )
    try:
        validate_slug(slug)
    except ValidationError:
        return [*errors, parsed.error(slug_path, f"{slug!r} is not a valid slug")]
    if Study.objects.filter(slug=slug).exists():
        errors.append(
            parsed.error(
                slug_path,
                f'a study with the slug "{slug}" already exists: import it under another '
                "slug (--slug, or the slug box of the admin's import page)",
            )
        )
    return errors


def _check_conditions(parsed: ParsedFile, refs: set[str]) -> list[FileError]:
    errors = _duplicates(parsed, "conditions", "name")
    references = [i for i, c in enumerate(parsed.data["conditions"]) if c.get("reference")]
    errors.extend(
        parsed.error(["conditions", i, "reference"], "only one condition can be the reference")
        for i in references[1:]
    )
    for i, entry in enumerate(parsed.data["conditions"]):
        base: Path_ = ["conditions", i]
        errors += _field_errors(
            parsed,
            Condition(**condition_values(entry)),
            base=base,
            paths={"is_reference": [*base, "reference"]},
            exclude=["study"],
        )
        errors.extend(
            parsed.error([*base, "articles", j], f"no article with ref {ref!r} in the file")
            for j, ref in enumerate(entry["articles"])
            if ref not in refs
        )
    return errors


def _check_questions(parsed: ParsedFile) -> list[FileError]:
    errors = _duplicates(parsed, "questions", "key")
    for i, entry in enumerate(parsed.data["questions"]):
        base: Path_ = ["questions", i]
        question = Question(**entry)
        errors += _field_errors(parsed, question, base=base, exclude=["study"], clean=True)
        low, high = entry.get("scale_min"), entry.get("scale_max")
        if entry["kind"] == Question.Kind.LIKERT and (low is None or high is None or low >= high):
            errors.append(
                parsed.error([*base, "scale_max"], "a rating scale needs scale_min below scale_max")
            )
        if entry["kind"] == Question.Kind.SLIDER and (
            (low is None) != (high is None) or (low is not None and low >= high)
        ):
            errors.append(
                parsed.error(
                    [*base, "scale_max"],
                    "a slider needs scale_min below scale_max (or neither, for 0-100)",
                )
            )
    return errors


def _check_rules(parsed: ParsedFile) -> list[FileError]:
    errors: list[FileError] = []
    for i, entry in enumerate(parsed.data["exclusion_rules"]):
        base: Path_ = ["exclusion_rules", i]
        errors += _field_errors(parsed, ExclusionRule(**entry), base=base, exclude=["study"])
        threshold = entry.get("threshold")
        if entry["kind"] == ExclusionRule.Kind.TOO_FAST and (threshold is None or threshold <= 0):
            errors.append(
                parsed.error([*base, "threshold"], "a too_fast rule needs a threshold above 0")
            )
    return errors


def _check_runs(parsed: ParsedFile) -> list[FileError]:
    run_model = apps.get_model("generation", "GenerationRun")
    errors = _duplicates(parsed, "generation_runs", "ref")
    for i, entry in enumerate(parsed.data.get("generation_runs") or []):
        values = {k: v for k, v in entry.items() if k != "ref"}
        errors += _field_errors(parsed, run_model(**values), base=["generation_runs", i])
    return errors


def _check_article(
    parsed: ParsedFile, i: int, entry: Mapping[str, Any], refs: Mapping[str, Any], runs: set[str]
) -> list[FileError]:
    base: Path_ = ["articles", i]
    errors = _field_errors(
        parsed,
        Article(**article_values(entry)),
        base=base,
        exclude=["source_article", "team", "word_count", "content_hash"],
    )
    digest = content_hash(entry["title"], entry["body"])
    if entry.get("content_hash", digest) != digest:
        errors.append(
            parsed.error(
                [*base, "content_hash"],
                "does not match the title and body (edited after export?): correct it or "
                "leave it out",
            )
        )
    source = entry.get("source")
    generated = entry["origin"] == Article.Origin.GENERATED
    if generated and not source:
        errors.append(parsed.error(base, "a generated article needs its source (a ref)"))
    if source is not None and source not in refs:
        errors.append(parsed.error([*base, "source"], f"no article with ref {source!r}"))
    sample = entry.get("sample")
    if sample is not None:
        # Ranges of the sample's numbers (a seed past 64 bits); its texts and settings
        # are kept as recorded, even empty.
        values = {k: v for k, v in sample.items() if k != "run"}
        errors += _field_errors(
            parsed,
            apps.get_model("generation", "Sample")(**values),
            base=[*base, "sample"],
            exclude=[
                "run",
                "source_article",
                "article",
                "settings",
                "prompt",
                "raw_text",
                "clean_text",
            ],
        )
        if not generated:
            errors.append(parsed.error([*base, "sample"], "only generated articles have one"))
        if sample["run"] not in runs:
            errors.append(
                parsed.error([*base, "sample", "run"], f"no generation run {sample['run']!r}")
            )
    return errors


def _order_articles(
    parsed: ParsedFile, refs: Mapping[str, int]
) -> tuple[list[str], list[FileError]]:
    """Refs with every source before the articles made from it, or an error on a cycle."""
    order: list[str] = []
    done: set[str] = set()
    for start in refs:
        chain: list[str] = []
        ref: str | None = start
        while ref is not None and ref not in done:
            if ref in chain:
                i = refs[start]
                return [], [parsed.error(["articles", i, "source"], "sources form a cycle")]
            chain.append(ref)
            ref = parsed.data["articles"][refs[ref]].get("source")
            if ref not in refs:
                ref = None
        for item in reversed(chain):
            done.add(item)
            order.append(item)
    return order, []


def _check_reuse(
    parsed: ParsedFile, team: Team | None, checked: Checked, refs: Mapping[str, int]
) -> None:
    digests = {
        content_hash(e["title"], e["body"]): i for i, e in enumerate(parsed.data["articles"])
    }
    if len(digests) < len(refs):
        seen: set[str] = set()
        for i, e in enumerate(parsed.data["articles"]):
            digest = content_hash(e["title"], e["body"])
            if digest in seen:
                checked.errors.append(
                    parsed.error(["articles", i], "the same title and text as an earlier article")
                )
            seen.add(digest)
    rows = Article.objects.filter(content_hash__in=digests).values_list(
        "content_hash", "pk", "team_id"
    )
    for digest, pk, owner in rows:
        if team is not None and owner not in (None, team.pk):
            # Like the article admin's duplicate check: another team's article is not
            # named, and it cannot be put in this team's conditions.
            checked.errors.append(
                parsed.error(
                    ["articles", digests[digest]],
                    "another team already has an article with this title and text; it can "
                    "be used once they move it to the shared pool",
                )
            )
        else:
            checked.existing[digest] = pk


def study_file_check(*, parsed: ParsedFile, team: Team | None, slug: str | None) -> Checked:
    """Check a schema-valid file against the models and the database; reads only."""
    data: dict[str, Any] = parsed.data
    checked = Checked(data=data, slug=slug or data["study"]["slug"])
    articles = data["articles"]
    refs = {e["ref"]: i for i, e in enumerate(articles)}
    runs = {r["ref"] for r in data.get("generation_runs") or []}
    errors = checked.errors
    errors += _check_study(parsed, checked.slug)
    errors += _check_conditions(parsed, set(refs))
    errors += _check_questions(parsed)
    errors += _check_rules(parsed)
    errors += _check_runs(parsed)
    errors += _duplicates(parsed, "articles", "ref")
    for i, entry in enumerate(articles):
        errors += _check_article(parsed, i, entry, refs, runs)
    keys = Counter(
        (e["sample"]["run"], e.get("source"), e["sample"].get("sample_index", 0))
        for e in articles
        if e.get("sample")
    )
    errors.extend(
        parsed.error(
            ["articles", i, "sample", "sample_index"],
            "two samples of one run have the same source and sample index",
        )
        for i, e in enumerate(articles)
        if e.get("sample")
        and keys[(e["sample"]["run"], e.get("source"), e["sample"].get("sample_index", 0))] > 1
    )
    order, cycle = _order_articles(parsed, refs)
    errors += cycle
    checked.article_order = order
    _check_reuse(parsed, team, checked, refs)
    errors.sort(key=lambda e: (e.line or 0, e.path, e.message))
    return checked
