"""manage.py export_responses --format wide|parquet|codebook|manifest, over the fixture
study of conftest.rated_study (13 non-test participations, one article each)."""

from __future__ import annotations

import csv
import io

import pandas as pd
import pytest
from django.core.management import CommandError

from analysis import exports
from analysis.frames import MANIFEST_COLUMNS, RESPONSE_COLUMNS
from surveys.models import Article, Participant, Question, Response, Trial
from tests.analysis.conftest import make_participant, rating
from tests.analysis.test_commands import run
from tests.factories import QuestionFactory, SampleFactory

pytestmark = pytest.mark.django_db


def _csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_wide_has_one_row_per_participant_with_positions(rated_study):
    out, _ = run("export_responses", rated_study.slug, "--format", "wide")
    rows = _csv(out)
    assert len(rows) == Participant.objects.filter(study=rated_study, is_test=False).count() == 13
    keys = ["credible", "believable", "accurate", "clear"]
    assert list(rows[0]) == exports.wide_columns(positions=1, question_keys=keys)
    by_id = {int(row["participant_id"]): row for row in rows}
    for trial in Trial.objects.filter(participant__study=rated_study, participant__is_test=False):
        row = by_id[trial.participant_id]
        assert int(row["article_id_1"]) == trial.article_id
        assert row["article_origin_1"] == trial.article.origin
        credible = Response.objects.get(trial=trial, question__key="credible")
        assert row["q_credible_1"] == credible.value


def test_wide_gives_each_exclusion_its_reason(rated_study):
    rows = _csv(run("export_responses", rated_study.slug, "--format", "wide")[0])
    reasons = sorted(row["exclusion_reason"] for row in rows)
    # 9 analysed; in progress and withdrawn are incomplete; "Red" and "green" fail.
    assert reasons == [""] * 9 + ["attention"] * 2 + ["incomplete"] * 2
    assert sum(row["analysed"] == "True" for row in rows) == 9
    with_test = _csv(
        run("export_responses", rated_study.slug, "--format", "wide", "--include-test")[0]
    )
    assert [row["exclusion_reason"] for row in with_test].count("test") == 1


def test_wide_spreads_several_articles_per_participant(live_study):
    person = make_participant(
        live_study, "generated", [rating("yes", 4), rating("no", 2), rating("yes", 5)]
    )
    rows = _csv(run("export_responses", live_study.slug, "--format", "wide")[0])
    assert len(rows) == 1
    row = rows[0]
    assert [row[f"q_credible_{k}"] for k in (1, 2, 3)] == ["yes", "no", "yes"]
    assert [row[f"q_believable_{k}"] for k in (1, 2, 3)] == ["4", "2", "5"]
    shown = list(person.trials.order_by("position").values_list("article_id", flat=True))
    assert [int(row[f"article_id_{k}"]) for k in (1, 2, 3)] == shown
    assert row["shown_at_1"].endswith("Z")


def test_parquet_round_trips_with_pandas(rated_study, tmp_path):
    target = tmp_path / "ratings.parquet"
    _, err = run("export_responses", rated_study.slug, "--format", "parquet", "-o", str(target))
    frame = pd.read_parquet(target)
    assert list(frame.columns) == RESPONSE_COLUMNS
    assert len(frame) == 13 * 4
    assert set(frame["response_id"]) == set(
        Response.objects.filter(
            participant__study=rated_study, participant__is_test=False, trial__isnull=False
        ).values_list("pk", flat=True)
    )
    assert str(frame["first_shown_at"].dt.tz) == "UTC"
    assert frame["is_test"].dtype == bool
    credible = frame.loc[frame["question_key"] == "credible"]
    assert set(credible["value_numeric"]) == {0.0, 1.0}
    assert (tmp_path / "ratings.parquet.ATTRIBUTION.txt").exists()
    assert "52 rows" in err


def test_parquet_writes_one_row_group_per_chunk(rated_study, tmp_path):
    import pyarrow.parquet as pq

    target = tmp_path / "ratings.parquet"
    rows = exports.responses_parquet_write(study=rated_study, path=target, chunk_size=10)
    assert rows == 52
    assert pq.ParquetFile(target).metadata.num_row_groups == 6  # 10+10+10+10+10+2


def test_parquet_of_empty_study_keeps_schema(live_study, tmp_path):
    target = tmp_path / "empty.parquet"
    run("export_responses", live_study.slug, "--format", "parquet", "-o", str(target))
    frame = pd.read_parquet(target)
    assert list(frame.columns) == RESPONSE_COLUMNS
    assert frame.empty


def test_parquet_to_stdout_is_refused(rated_study):
    with pytest.raises(CommandError, match="-o"):
        run("export_responses", rated_study.slug, "--format", "parquet")


def test_unknown_format_is_refused(rated_study, tmp_path):
    with pytest.raises(CommandError, match="invalid choice"):
        run("export_responses", rated_study.slug, "--format", "xlsx", "-o", str(tmp_path / "x"))
    assert list(tmp_path.iterdir()) == []


def test_codebook_lists_every_column_and_question(rated_study, tmp_path):
    QuestionFactory.create(
        study=rated_study, key="why", text="Why | how?", kind=Question.Kind.FREE_TEXT
    )
    target = tmp_path / "codebook.csv"
    run("export_responses", rated_study.slug, "--format", "codebook", "-o", str(target))
    rows = _csv(target.read_text(encoding="utf-8"))
    long_columns = [row["column"] for row in rows if row["export"] == "long"]
    assert long_columns == RESPONSE_COLUMNS
    wide_columns = {row["column"] for row in rows if row["export"] == "wide"}
    assert set(exports.WIDE_PARTICIPANT_COLUMNS) <= wide_columns
    assert {"article_id_<k>", "q_credible_<k>", "q_why_<k>"} <= wide_columns
    questions = {row["column"]: row for row in rows if row["export"] == "question"}
    assert set(questions) == set(rated_study.questions.values_list("key", flat=True))
    assert "Is this article credible?" in questions["credible"]["meaning"]
    assert "yes = 1, no = 0" in questions["credible"]["allowed"]
    believable = rated_study.questions.get(key="believable")
    assert (
        f"integers {believable.scale_min} to {believable.scale_max}"
        in (questions["believable"]["allowed"])
    )
    assert "Blue" in questions["attention"]["allowed"]


def test_codebook_markdown_to_stdout(rated_study):
    out, _ = run("export_responses", rated_study.slug, "--format", "codebook")
    assert out.startswith(f"# Codebook: {rated_study.title}")
    assert "## Long export" in out
    assert "## Wide export" in out
    assert "## Questions" in out
    assert "| credible |" in out


def test_manifest_lists_every_article_with_provenance(rated_study):
    generated = Article.objects.filter(conditions__study=rated_study, origin="generated").first()
    sample = SampleFactory.create(
        source_article=generated.source_article, article=generated, seed=4242
    )
    out, _ = run("export_responses", rated_study.slug, "--format", "manifest")
    rows = _csv(out)
    assert list(rows[0]) == MANIFEST_COLUMNS
    expected = set(
        Article.objects.filter(conditions__study=rated_study).values_list("pk", flat=True)
    ) | set(
        Trial.objects.filter(participant__study=rated_study).values_list("article_id", flat=True)
    )
    assert {int(row["article_id"]) for row in rows} == expected
    by_id = {int(row["article_id"]): row for row in rows}
    linked = by_id[generated.pk]
    assert int(linked["sample_id"]) == sample.pk
    assert linked["sample_seed"] == "4242"
    assert int(linked["run_id"]) == sample.run_id
    assert linked["run_top_k"] == str(sample.run.top_k)
    assert '"top_k": 40' in linked["sample_settings"]
    assert int(linked["source_article_id"]) == generated.source_article_id
    assert linked["conditions"] == "generated"
    real = next(row for row in rows if row["origin"] == "real")
    assert real["sample_id"] == ""
    assert real["url"].startswith("https://en.wikinews.org/")
    shown = Trial.objects.filter(participant__study=rated_study, article_id=generated.pk).count()
    assert int(linked["times_shown"]) == shown
