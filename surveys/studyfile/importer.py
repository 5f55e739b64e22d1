"""Reading a study file into the database: all of it in one transaction, or nothing.

The file is parsed (YAML, with line numbers), checked against the JSON Schema, then
against the models and the database (``surveys.studyfile.checks``); only a file without
a single error is written. The study arrives as a draft of the importing team, without
participants (they are not part of a study file). Articles already in the database with
the same text (content hash, unique in the whole pool) are reused, as the article
importer does, unless they belong to another team: those are not named, and the import
stops, because a team's conditions hold only articles the team may see.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.db import DataError, IntegrityError, transaction

from surveys.models import (
    Article,
    Condition,
    ExclusionRule,
    Question,
    Study,
    Team,
    content_hash,
)
from surveys.services import study_design_hash
from surveys.studyfile.checks import (
    Checked,
    article_values,
    condition_values,
    study_file_check,
    study_values,
)
from surveys.studyfile.schema import FileError, FileUnreadable, parse, schema_errors


@dataclass
class StudyFileResult:
    """What an import did, or with ``dry_run`` what it would do. ``errors`` non-empty
    means nothing was written."""

    dry_run: bool
    errors: list[FileError] = field(default_factory=list)
    study: Study | None = None
    slug: str = ""
    title: str = ""
    conditions: int = 0
    questions: int = 0
    exclusion_rules: int = 0
    articles_created: int = 0
    articles_reused: int = 0
    generation_runs: int = 0
    design_hash: str = ""
    exported_design_hash: str = ""

    @property
    def ok(self) -> bool:
        return not self.errors

    @property
    def same_design(self) -> bool | None:
        """Whether the imported design hashes as the exported one did (None when the
        exported study had no frozen hash: a draft)."""
        if not self.exported_design_hash or not self.design_hash:
            return None
        return self.exported_design_hash == self.design_hash

    def summary(self) -> str:
        verb = "would create" if self.dry_run else "created"
        text = (
            f'study "{self.slug}" ({self.title}): {verb} {self.conditions} condition(s), '
            f"{self.questions} question(s), {self.exclusion_rules} exclusion rule(s), "
            f"{self.articles_created} article(s) ({self.articles_reused} reused from the "
            f"pool), {self.generation_runs} generation run(s)"
        )
        if self.same_design is True:
            text += f"; same design hash as the exported study ({self.design_hash[:12]}…)"
        elif self.same_design is False:
            text += (
                f"; design hash {self.design_hash[:12]}… differs from the exported study's "
                f"{self.exported_design_hash[:12]}… (the design was changed)"
            )
        return text


def _write_articles(
    checked: Checked, team: Team | None, result: StudyFileResult
) -> dict[str, Article]:
    """Create the new articles (sources first) and their generation provenance; the
    file's refs mapped to the database's articles."""
    entries = {e["ref"]: e for e in checked.data["articles"]}
    runs_in_file = {r["ref"]: r for r in checked.data.get("generation_runs") or []}
    run_model = apps.get_model("generation", "GenerationRun")
    sample_model = apps.get_model("generation", "Sample")
    by_ref: dict[str, Article] = {}
    existing = {a.content_hash: a for a in Article.objects.filter(pk__in=checked.existing.values())}
    runs: dict[str, Any] = {}
    for ref in checked.article_order:
        entry = entries[ref]
        digest = content_hash(entry["title"], entry["body"])
        if digest in existing:
            by_ref[ref] = existing[digest]
            result.articles_reused += 1
            continue
        source = by_ref.get(entry.get("source") or "")
        article = Article(**article_values(entry), source_article=source, team=team)
        article.save()
        by_ref[ref] = article
        result.articles_created += 1
        sample = entry.get("sample")
        if sample is None or source is None:
            continue
        run_ref = sample["run"]
        if run_ref not in runs:
            values = {k: v for k, v in runs_in_file[run_ref].items() if k != "ref"}
            runs[run_ref] = run_model.objects.create(
                **values, team=team, status=run_model.Status.DONE
            )
        run = runs[run_ref]
        run.source_articles.add(source)
        sample_model.objects.create(
            **{k: v for k, v in sample.items() if k != "run"},
            run=run,
            source_article=source,
            article=article,
        )
    for run in runs.values():
        n = sample_model.objects.filter(run=run).count()
        run_model.objects.filter(pk=run.pk).update(samples_total=n, samples_done=n)
    result.generation_runs = len(runs)
    return by_ref


def _write(checked: Checked, team: Team | None, result: StudyFileResult) -> Study:
    data = checked.data
    by_ref = _write_articles(checked, team, result)
    study = Study.objects.create(
        **study_values(data, checked.slug), team=team, status=Study.Status.DRAFT
    )
    for entry in data["conditions"]:
        condition = Condition.objects.create(study=study, **condition_values(entry))
        condition.articles.set({by_ref[ref].pk for ref in entry["articles"]})
    for entry in data["questions"]:
        Question.objects.create(study=study, **entry)
    for entry in data["exclusion_rules"]:
        ExclusionRule.objects.create(study=study, **entry)
    result.conditions = len(data["conditions"])
    result.questions = len(data["questions"])
    result.exclusion_rules = len(data["exclusion_rules"])
    result.design_hash = study_design_hash(study=study)
    return study


def study_file_import(
    *, text: str, team: Team | None, slug: str | None = None, dry_run: bool = False
) -> StudyFileResult:
    """Import the study file ``text`` as a new draft study of ``team`` (None: a study
    only superusers see), under ``slug`` when given instead of the file's.

    Every error (YAML, schema, models, a slug in use, another team's article) is
    listed with its line and field, and then nothing is written. Otherwise the study,
    its conditions, questions, exclusion rules, new articles and their generation runs
    and samples are written in one transaction; with ``dry_run`` the same work is done
    and rolled back, so the counts are exactly what a real import would create.
    """
    result = StudyFileResult(dry_run=dry_run)
    try:
        parsed = parse(text)
    except FileUnreadable as error:
        result.errors = [error.error]
        return result
    result.errors = schema_errors(parsed)
    if result.errors:
        return result
    checked = study_file_check(parsed=parsed, team=team, slug=slug)
    result.slug = checked.slug
    result.title = checked.data["study"]["title"]
    result.exported_design_hash = (checked.data.get("exported_from") or {}).get("design_hash", "")
    if checked.errors:
        result.errors = checked.errors
        return result
    try:
        with transaction.atomic():
            study = _write(checked, team, result)
            if dry_run:
                transaction.set_rollback(True)
            else:
                result.study = study
    except IntegrityError:
        # Another import or edit took the slug or one of the texts in the meantime.
        return _refused(
            dry_run,
            "the database changed while importing (the slug or an article was added at "
            "the same time); nothing was written, import the file again",
        )
    except DataError as error:
        # A value the checks above let through and the database does not store.
        return _refused(dry_run, f"the database refused a value ({error}); nothing was written")
    return result


def _refused(dry_run: bool, message: str) -> StudyFileResult:
    return StudyFileResult(dry_run=dry_run, errors=[FileError(None, "", message)])
