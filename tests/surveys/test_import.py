"""Importing articles: JSONL and CSV, per-line errors, all-or-nothing, duplicates."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from surveys.importers import articles_import, format_from_filename
from surveys.models import WIKINEWS_ATTRIBUTION, Article
from tests.factories import RealArticleFactory

BUNDLED = Path(__file__).resolve().parents[2] / "data" / "wikinews_articles.jsonl"

pytestmark = pytest.mark.django_db


def _line(**fields: object) -> str:
    record = {
        "id": "x-1",
        "title": "Storm closes harbour",
        "body": "A storm closed the harbour on Monday.\n\nFerries were cancelled.",
        "date": "2019-03-04",
        "source": "Wikinews",
        "url": "https://en.wikinews.org/wiki/Storm",
        "license": "CC-BY-2.5",
    }
    record.update(fields)
    return json.dumps({k: v for k, v in record.items() if v is not ...})


def test_jsonl_creates_articles_with_all_fields():
    text = "\n".join(
        [_line(), _line(id="x-2", title="Mayor resigns", body="The mayor resigned.\n\nMore.")]
    )
    result = articles_import(text=text, fmt="jsonl")
    assert (result.created, result.skipped, result.errors) == (2, 0, [])
    storm = Article.objects.get(external_id="x-1")
    assert storm.origin == Article.Origin.REAL
    assert storm.title == "Storm closes harbour"
    assert storm.lede == "A storm closed the harbour on Monday."
    assert storm.published == date(2019, 3, 4)
    assert storm.outlet == "Wikinews"
    assert storm.license == "CC-BY-2.5"
    assert storm.url == "https://en.wikinews.org/wiki/Storm"
    assert storm.attribution == WIKINEWS_ATTRIBUTION
    assert storm.word_count == 10
    assert storm.in_demo_pool is True


def test_csv_with_multiline_bodies_and_outlet_column():
    text = (
        "title,body,date,outlet,url\r\n"
        '"Bridge reopens","The bridge reopened.\r\n\r\nTraffic resumed.",2020-01-02,Local Times,'
        "https://example.org/bridge\r\n"
        "Fire downtown,A fire broke out downtown.,,,\r\n"
    )
    result = articles_import(text=text, fmt="csv", default_license="CC-BY-4.0")
    assert (result.created, result.errors) == (2, [])
    bridge = Article.objects.get(title="Bridge reopens")
    assert bridge.body == "The bridge reopened.\n\nTraffic resumed."
    assert bridge.paragraphs == ["The bridge reopened.", "Traffic resumed."]
    assert bridge.outlet == "Local Times"
    assert bridge.license == "CC-BY-4.0"
    assert bridge.attribution == ""
    fire = Article.objects.get(title="Fire downtown")
    assert fire.published is None
    assert fire.url == ""


def test_malformed_lines_are_all_reported_and_nothing_is_written():
    lines = [
        _line(id="ok-1"),  # 1: fine on its own
        "{not json",  # 2
        _line(id="ok-2", title="Other", body=...),  # 3: no body
        _line(id="ok-3", title="Third", date="2019-13-01"),  # 4
        "",  # 5: blank lines are ignored
        _line(id="ok-4", title="Fourth", body="   "),  # 6
        "[1, 2]",  # 7
    ]
    result = articles_import(text="\n".join(lines), fmt="jsonl")
    assert result.created == 0
    assert result.errors[0].startswith("line 2: invalid JSON: ")
    assert result.errors[1:] == [
        "line 3: missing field 'body'",
        "line 4: date '2019-13-01' is not YYYY-MM-DD",
        "line 6: body is empty",
        "line 7: expected a JSON object, got list",
    ]
    assert Article.objects.count() == 0


def test_wrong_types_bad_url_and_long_title_are_errors():
    lines = [
        _line(title=42),
        _line(title="b", url="not a url"),
        _line(title="x" * 501),
        _line(title="d", date="4 March 2019"),
    ]
    result = articles_import(text="\n".join(lines), fmt="jsonl")
    assert result.errors == [
        "line 1: field 'title' must be a string",
        "line 2: url 'not a url' is not an http(s) URL",
        "line 3: title is 501 characters long (at most 500)",
        "line 4: date '4 March 2019' is not YYYY-MM-DD",
    ]
    assert Article.objects.count() == 0


def test_csv_without_body_column_is_refused():
    result = articles_import(text="title,text2\nA,B\n", fmt="csv")
    assert result.created == 0
    assert len(result.errors) == 1
    assert result.errors[0].startswith("line 1: the header lacks column(s) 'body'")
    assert Article.objects.count() == 0


def test_csv_error_reports_the_line_a_multiline_record_starts_on():
    text = 'title,body,date\n"A","one\n\ntwo",2020-01-01\n"B","three",2020-02-30\n'
    result = articles_import(text=text, fmt="csv")
    assert result.errors == ["line 5: date '2020-02-30' is not YYYY-MM-DD"]
    assert Article.objects.count() == 0


def test_duplicates_in_the_pool_and_in_the_file_are_skipped_not_errors():
    existing = RealArticleFactory.create(title="Storm closes harbour", body="Same  text.\n\nHere.")
    lines = [
        _line(body="Same text.\n\nHere."),  # whitespace differs only: same content hash
        _line(id="new", title="New story", body="Fresh news."),
        _line(id="again", title="New story", body="Fresh news."),
    ]
    result = articles_import(text="\n".join(lines), fmt="jsonl")
    assert (result.created, result.skipped, result.errors) == (1, 2, [])
    assert result.skipped_details == [
        f"line 1: already in the pool as article #{existing.pk}",
        "line 3: same text as line 2",
    ]
    assert Article.objects.count() == 2
    assert Article.objects.get(title="New story").external_id == "new"


def test_interviews_and_long_features_leave_the_demo_pool():
    interview = "((WN)) What happened?\n\n((Jane Doe)) A lot."
    long_body = " ".join(["word"] * 1501)
    just_short_enough = " ".join(["word"] * 1499) + " end"
    lines = [
        _line(id="i", title="Interview", body=interview),
        _line(id="w", title="WSS", body="((WSS)) Question?\n\nAnswer."),
        _line(id="l", title="Long", body=long_body),
        _line(id="s", title="Short", body=just_short_enough),
        _line(id="n", title="Named speaker", body="((Jane Doe)) Said things."),
    ]
    assert articles_import(text="\n".join(lines), fmt="jsonl").created == 5
    pool = dict(Article.objects.values_list("external_id", "in_demo_pool"))
    assert pool == {"i": False, "w": False, "l": False, "s": True, "n": True}


def test_empty_file_and_unknown_format():
    assert articles_import(text="\n\n", fmt="jsonl").errors == ["the file holds no articles"]
    with pytest.raises(ValueError, match="Unknown import format 'xml'"):
        articles_import(text="", fmt="xml")
    with pytest.raises(ValueError, match="Unknown origin"):
        articles_import(text=_line(), fmt="jsonl", origin="fake")
    assert format_from_filename("a/b.JSONL") == "jsonl"
    assert format_from_filename("b.csv") == "csv"
    with pytest.raises(ValueError, match="extension"):
        format_from_filename("b.txt")


def test_generated_articles_need_a_known_source_and_a_model():
    source = RealArticleFactory.create(external_id="src-1")
    lines = [
        _line(id="g1", title="Gen one", source_id="src-1", model="gpt2-large"),
        _line(id="g2", title="Gen two", source_id="missing", model="gpt2-large"),
        _line(id="g3", title="Gen three", source_id="src-1"),
    ]
    result = articles_import(text="\n".join(lines), fmt="jsonl", origin="generated")
    assert result.errors == [
        "line 2: source article 'missing' is not a real article in the pool",
        "line 3: generated articles need 'model' (the model's name)",
    ]
    assert Article.objects.generated().count() == 0
    ok = articles_import(text=lines[0], fmt="jsonl", origin="generated")
    assert ok.created == 1
    generated = Article.objects.generated().get()
    assert generated.source_article == source
    assert generated.model_name == "gpt2-large"


def test_bundled_wikinews_file_gives_312_articles_282_in_demo_pool():
    result = articles_import(text=BUNDLED.read_text(encoding="utf-8"), fmt="jsonl")
    assert (result.created, result.skipped, result.errors) == (312, 0, [])
    assert Article.objects.real().count() == 312
    # The data README's filter (no ((WN))/((WSS)) markers, at most 1,500 words) keeps 282.
    assert Article.objects.in_demo_pool().count() == 282
    assert Article.objects.filter(attribution=WIKINEWS_ATTRIBUTION).count() == 312
    assert Article.objects.filter(published__isnull=True).count() == 0


def test_command_imports_then_skips_everything_the_second_time(capsys):
    call_command("import_articles", str(BUNDLED))
    first = capsys.readouterr().out
    assert "created 312, skipped 0" in first
    call_command("import_articles", str(BUNDLED))
    second = capsys.readouterr().out
    assert "created 0, skipped 312" in second
    assert Article.objects.count() == 312


def test_command_reports_line_errors_and_writes_nothing(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(_line() + "\n" + _line(id="b", title="B", date="2019-13-01") + "\n")
    with pytest.raises(CommandError) as error:
        call_command("import_articles", str(path))
    assert "1 error(s); nothing was imported" in str(error.value)
    assert "line 2: date '2019-13-01' is not YYYY-MM-DD" in str(error.value)
    assert Article.objects.count() == 0


def test_command_format_option_missing_file_and_bad_encoding(tmp_path):
    with pytest.raises(CommandError, match="No such file"):
        call_command("import_articles", str(tmp_path / "nope.jsonl"))
    text_file = tmp_path / "articles.txt"
    text_file.write_text("title,body\nA,B\n")
    with pytest.raises(CommandError, match="extension"):
        call_command("import_articles", str(text_file))
    call_command("import_articles", str(text_file), "--format", "csv")
    assert Article.objects.get().title == "A"
    latin = tmp_path / "latin.csv"
    latin.write_bytes("title,body\nCaf\xe9,B\n".encode("latin-1"))
    with pytest.raises(CommandError, match="not UTF-8"):
        call_command("import_articles", str(latin))
