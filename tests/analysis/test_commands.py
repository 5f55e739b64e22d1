"""manage.py analyze and manage.py export_responses."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import CommandError, call_command
from django.utils.html import escape

from analysis.frames import RESPONSE_COLUMNS
from surveys.models import WIKINEWS_ATTRIBUTION, Question, Response, Trial
from tests.analysis.conftest import make_participant, rating

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_analyze_prints_ledger_rates_and_comparison(rated_study):
    out, _ = run("analyze", rated_study.slug)
    assert "Recruited (all participations)" in out
    assert "Analysed" in out
    lines = out.splitlines()
    real = next(line for line in lines if line.strip().startswith("real "))
    assert "n=4" in real
    assert "75.0% [30.1%, 95.4%]" in real  # Wilson 3/4: 0.3006-0.9544
    assert "(reference)" in real
    generated = next(line for line in lines if line.strip().startswith("generated "))
    assert "n=5" in generated
    assert "40.0%" in generated
    comparison = next(line for line in lines if "generated vs real" in line)
    assert "diff -35.0 pp" in comparison
    assert "z=-1.05" in comparison
    assert "chi2=1.10" in comparison
    assert "believable" in out


def test_analyze_ledger_numbers(rated_study):
    out, _ = run("analyze", rated_study.slug)
    test_line = next(line for line in out.splitlines() if "Test / preview" in line)
    assert test_line.split()[-2:] == ["-1", "13"]
    analysed_line = next(line for line in out.splitlines() if line.strip().startswith("Analysed"))
    assert analysed_line.split()[-1] == "9"


def test_analyze_unknown_slug_lists_existing(rated_study):
    with pytest.raises(CommandError, match=f'No study with slug "nope".*{rated_study.slug}'):
        run("analyze", "nope")


def test_export_to_stdout_one_row_per_rating(rated_study):
    out, err = run("export_responses", rated_study.slug)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert list(rows[0].keys()) == RESPONSE_COLUMNS
    expected = Response.objects.filter(
        participant__study=rated_study, participant__is_test=False, trial__isnull=False
    ).count()
    assert len(rows) == expected == 13 * 4
    assert {row["response_id"] for row in rows} == {
        str(pk)
        for pk in Response.objects.filter(
            participant__study=rated_study, participant__is_test=False, trial__isnull=False
        ).values_list("pk", flat=True)
    }
    real = [row for row in rows if row["condition"] == "real"]
    assert all(row["url"].startswith("https://en.wikinews.org/") for row in real)
    assert all(row["license"] == "CC-BY-2.5" for row in real)
    assert WIKINEWS_ATTRIBUTION in err


def test_export_include_test(rated_study):
    out, _ = run("export_responses", rated_study.slug, "--include-test")
    assert len(list(csv.DictReader(io.StringIO(out)))) == 14 * 4


def test_export_to_file_writes_attribution_beside_it(rated_study, tmp_path):
    target = tmp_path / "ratings.csv"
    _, err = run("export_responses", rated_study.slug, "-o", str(target))
    with target.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 13 * 4
    attribution = tmp_path / "ratings.csv.ATTRIBUTION.txt"
    assert attribution.read_text(encoding="utf-8").strip() == WIKINEWS_ATTRIBUTION
    assert "ratings.csv" in err


def test_export_unknown_slug_writes_nothing(rated_study, tmp_path):
    target = tmp_path / "ratings.csv"
    with pytest.raises(CommandError, match="No study with slug"):
        run("export_responses", "nope", "-o", str(target))
    assert list(tmp_path.iterdir()) == []


def test_export_into_missing_folder_is_a_clear_error(rated_study, tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        run("export_responses", rated_study.slug, "-o", str(tmp_path / "nope" / "x.csv"))
    assert list(tmp_path.iterdir()) == []


def test_export_streams_in_chunks(rated_study):
    from analysis.services import responses_csv_chunks

    chunks = list(responses_csv_chunks(study=rated_study, chunk_size=10))
    # 52 rows read 10 at a time: 6 pieces, the header only in the first.
    assert len(chunks) == 6
    assert sum(chunk.count("\n") for chunk in chunks) == 1 + 13 * 4
    assert chunks[0].startswith("response_id,")
    assert not any(chunk.startswith("response_id,") for chunk in chunks[1:])


def test_export_of_study_without_ratings_is_header_only(live_study):
    out, _ = run("export_responses", live_study.slug)
    assert out == ",".join(RESPONSE_COLUMNS) + "\n"


def test_export_quotes_free_text_and_writes_utc_timestamps(live_study):
    from tests.factories import QuestionFactory

    QuestionFactory.create(
        study=live_study, key="why", kind=Question.Kind.FREE_TEXT, required=False
    )
    answer = 'Too neat, "quoted",\nand on two lines'
    make_participant(live_study, "real", [{**rating("yes"), "why": answer}])
    out, _ = run("export_responses", live_study.slug)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert len(rows) == 5
    why = next(row for row in rows if row["question_key"] == "why")
    assert why["value"] == answer
    assert why["value_numeric"] == ""
    trial = Trial.objects.get(participant__study=live_study)
    assert why["first_shown_at"] == trial.first_shown_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def test_analyze_prints_regression_and_power(rated_study):
    out, _ = run("analyze", rated_study.slug)
    assert "participant-clustered standard errors" in out
    regression = next(
        line for line in out.splitlines() if line.split()[:2] == ["generated", "log-odds"]
    )
    assert "odds ratio 0.22" in regression  # 2/9 by hand
    power = next(line for line in out.splitlines() if "80% power" in line and "generated" in line)
    assert "n per condition for 80% power at these observed rates: 31" in power


def test_analyze_prints_the_gpt2_planning_yardstick(rated_study):
    out, _ = run("analyze", rated_study.slug)
    # (1.959964 sqrt(2 * 0.775 * 0.225) + 0.841621 sqrt(0.72 * 0.28 + 0.83 * 0.17))^2
    # / 0.11^2 = 225.04, rounded up.
    assert "72% vs 83%" in out
    assert "needs 226 ratings per condition" in out


def test_analyze_prints_the_credibility_index_and_its_tests(rated_study):
    out, _ = run("analyze", rated_study.slug)
    assert "Credibility index" in out
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Credibility index"))
    section = lines[start:]
    real = next(line for line in section if line.strip().startswith("real "))
    assert "mean 7.00" in real  # index = sum - 2: 8, 8, 7, 5
    assert "sd 1.41" in real
    test = next(line for line in section if "generated vs real" in line)
    assert "Welch t=-1.29" in test  # -1 / sqrt(0.5/5 + 2/4)
    assert "Student t=-1.39, df=7" in test  # -1 / sqrt(8/7 * 0.45)
    assert any(line.strip().startswith("one-way ANOVA: F(1, 7) = 1.94") for line in section)
    assert any("Kruskal-Wallis" in line for line in section)
    assert any("Cronbach's alpha" in line and "0.00" in line for line in section)


def test_analyze_html_writes_one_self_contained_file(rated_study, tmp_path):
    target = tmp_path / "report.html"
    out, err = run("analyze", rated_study.slug, "--html", str(target))
    assert "Credibility index" in out
    assert str(target) in err
    html = target.read_text(encoding="utf-8")
    assert 'id="ledger"' in html
    assert "Failed an attention check, excluded" in html
    assert 'id="credibility-index"' in html
    assert html.count("<svg") == 4
    assert escape(WIKINEWS_ATTRIBUTION) in html
    # Self-contained: nothing is fetched from elsewhere.
    assert "<img" not in html
    assert "<link" not in html
    assert "<script" not in html
    assert list(tmp_path.iterdir()) == [target]


def test_analyze_html_into_missing_folder_writes_nothing(rated_study, tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        run("analyze", rated_study.slug, "--html", str(tmp_path / "nope" / "r.html"))
    assert list(tmp_path.iterdir()) == []


def test_analyze_html_for_empty_study_says_no_data(live_study, tmp_path):
    target = tmp_path / "report.html"
    run("analyze", live_study.slug, "--html", str(target))
    html = target.read_text(encoding="utf-8")
    assert "No data yet" in html
    assert html.count("<svg") == 4
