"""The analysts' REST API: who may read, then what each endpoint returns against the
database and against ``study_report``."""

from __future__ import annotations

import csv
import io
import math

import pytest
from django.contrib.auth import get_user_model
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from analysis.frames import RESPONSE_COLUMNS, articles_manifest_frame, participants_frame
from analysis.services import study_report
from surveys.models import Article, Participant, Response, Study, Team, TeamMembership
from tests.analysis.conftest import make_participant, rating
from tests.factories import StudyFactory

pytestmark = pytest.mark.django_db

STUDY_ENDPOINTS = [
    "api:study-detail",
    "api:condition-list",
    "api:article-list",
    "api:participant-list",
    "api:response-list",
    "api:study-results",
]
ALL_ENDPOINTS = ["api:study-list", *STUDY_ENDPOINTS]


def _url(name: str, study: Study | None = None, slug: str | None = None) -> str:
    if name == "api:study-list":
        return reverse(name)
    return reverse(name, args=[slug or study.slug])  # type: ignore[union-attr]


def _token_client(*, is_staff: bool, username: str, is_superuser: bool = False) -> APIClient:
    user = get_user_model().objects.create_user(
        username, password="pw", is_staff=is_staff, is_superuser=is_superuser
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def staff_api() -> APIClient:
    # A superuser sees every study; team members and outsiders: tests/analysis/test_access.py.
    return _token_client(is_staff=True, username="analyst", is_superuser=True)


@pytest.fixture
def outsider_api() -> APIClient:
    return _token_client(is_staff=False, username="outsider")


def _csv_rows(response) -> tuple[list[str], list[dict[str, str]]]:  # type: ignore[no-untyped-def]
    reader = csv.DictReader(io.StringIO(response.content.decode("utf-8")))
    rows = list(reader)
    return list(reader.fieldnames or []), rows


# ---------------------------------------------------------------------------------------
# Access


@pytest.mark.parametrize("name", STUDY_ENDPOINTS)
def test_outsider_gets_403_on_study_endpoints(outsider_api, rated_study, name):
    response = outsider_api.get(_url(name, rated_study))
    assert response.status_code == 403


def test_outsider_sees_no_studies_in_the_list(outsider_api, rated_study):
    response = outsider_api.get(_url("api:study-list"))
    assert response.status_code == 200
    assert response.json() == []


@pytest.mark.parametrize("name", ALL_ENDPOINTS)
def test_anonymous_gets_401_with_token_challenge(rated_study, name):
    response = APIClient().get(_url(name, rated_study))
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_bad_token_gets_401(rated_study):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert client.get(_url("api:study-detail", rated_study)).status_code == 401


@pytest.mark.parametrize("name", STUDY_ENDPOINTS)
def test_unknown_slug_is_404(staff_api, name):
    assert staff_api.get(_url(name, slug="no-such-study")).status_code == 404


@pytest.mark.parametrize("name", ALL_ENDPOINTS)
@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_writes_are_refused_with_405_and_change_nothing(staff_api, rated_study, name, method):
    responses_before = Response.objects.count()
    response = getattr(staff_api, method)(_url(name, rated_study), {"status": "closed"})
    assert response.status_code == 405
    rated_study.refresh_from_db()
    assert rated_study.status == Study.Status.LIVE
    assert Response.objects.count() == responses_before


def test_session_login_works_for_staff(client, rated_study):
    user = get_user_model().objects.create_user("browser", password="pw", is_staff=True)
    team = Team.objects.create(name="Browsers")
    TeamMembership.objects.create(team=team, user=user, role=TeamMembership.Role.ANALYST)
    Study.objects.filter(pk=rated_study.pk).update(team=team)
    client.force_login(user)
    response = client.get(_url("api:study-detail", rated_study), HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    assert response.json()["slug"] == rated_study.slug


# ---------------------------------------------------------------------------------------
# Studies and conditions


def test_study_list_shows_every_study_to_staff(staff_api, rated_study):
    other = StudyFactory.create(slug="draft-one")
    response = staff_api.get(_url("api:study-list"))
    assert response.status_code == 200
    by_slug = {row["slug"]: row for row in response.json()}
    assert set(by_slug) == set(Study.objects.values_list("slug", flat=True))
    assert by_slug[rated_study.slug]["status"] == "live"
    assert by_slug[rated_study.slug]["condition_count"] == 2
    assert by_slug[rated_study.slug]["participant_count"] == rated_study.participants.count()
    assert by_slug[other.slug]["status"] == "draft"


def test_study_detail_has_design_conditions_and_questions(staff_api, rated_study):
    response = staff_api.get(_url("api:study-detail", rated_study))
    assert response.status_code == 200
    body = response.json()
    rated_study.refresh_from_db()
    assert body["status"] == rated_study.status == "live"
    assert body["design_hash"] == rated_study.design_hash != ""
    conditions = {c["name"]: c for c in body["conditions"]}
    assert (
        conditions["real"]["article_count"]
        == rated_study.conditions.get(name="real").articles.count()
        == 3
    )
    assert conditions["real"]["is_reference"] is True
    # Completed, non-test: 4 analysed + 1 who failed the check (real); 5 + 1 (generated).
    assert conditions["real"]["completed_participants"] == 5
    assert conditions["generated"]["completed_participants"] == 6
    questions = {q["key"]: q for q in body["questions"]}
    assert set(questions) == set(rated_study.questions.values_list("key", flat=True))
    assert questions["credible"]["kind"] == "binary"
    assert (questions["believable"]["scale_min"], questions["believable"]["scale_max"]) == (1, 4)
    assert questions["attention"]["choices"] == ["Red", "Blue", "Green"]
    assert questions["attention"]["scope"] == "attention"


def test_conditions_endpoint_and_its_csv(staff_api, rated_study):
    response = staff_api.get(_url("api:condition-list", rated_study))
    assert response.status_code == 200
    assert [c["name"] for c in response.json()] == ["real", "generated"]
    as_csv = staff_api.get(_url("api:condition-list", rated_study), {"format": "csv"})
    assert as_csv.status_code == 200
    assert as_csv["Content-Type"].startswith("text/csv")
    header, rows = _csv_rows(as_csv)
    assert header[:3] == ["name", "label", "is_reference"]
    assert [row["article_count"] for row in rows] == ["3", "3"]


# ---------------------------------------------------------------------------------------
# Articles


def test_article_manifest_has_provenance_of_every_article(staff_api, rated_study):
    response = staff_api.get(_url("api:article-list", rated_study))
    assert response.status_code == 200
    rows = response.json()
    pool = Article.objects.filter(conditions__study=rated_study)
    assert sorted(row["article_id"] for row in rows) == sorted(pool.values_list("pk", flat=True))
    generated = next(row for row in rows if row["origin"] == "generated")
    article = Article.objects.get(pk=generated["article_id"])
    assert generated["model_name"] == article.model_name == "tiny-test-model"
    assert generated["source_article_id"] == article.source_article_id
    assert generated["conditions"] == "generated"
    real = next(row for row in rows if row["origin"] == "real")
    article = Article.objects.get(pk=real["article_id"])
    assert (real["url"], real["license"], real["outlet"]) == (article.url, "CC-BY-2.5", "Wikinews")
    assert real["source_article_id"] is None
    assert sum(row["times_shown"] for row in rows) == sum(
        articles_manifest_frame(study=rated_study)["times_shown"]
    )


def test_article_manifest_csv_has_the_manifest_columns(staff_api, rated_study):
    response = staff_api.get(_url("api:article-list", rated_study), {"format": "csv"})
    assert response.status_code == 200
    header, rows = _csv_rows(response)
    assert header == list(articles_manifest_frame(study=rated_study).columns)
    assert len(rows) == 6


# ---------------------------------------------------------------------------------------
# Participants


def test_participants_match_the_frame_including_check_tallies(staff_api, rated_study):
    response = staff_api.get(_url("api:participant-list", rated_study))
    assert response.status_code == 200
    body = response.json()
    frame = participants_frame(study=rated_study).set_index("participant_id")
    assert body["count"] == len(frame) == Participant.objects.filter(study=rated_study).count()
    for row in body["results"]:
        expected = frame.loc[row["participant_id"]]
        assert row["participant_token"] == expected["participant_token"]
        assert row["checks_answered"] == expected["checks_answered"]
        assert row["checks_failed"] == expected["checks_failed"]
        assert row["passed_checks"] == bool(expected["passed_checks"])
        assert row["exclusion_reason"] == expected["exclusion_reason"]
    # Every ledger step is represented in this study: test, incomplete, failed check.
    reasons = {row["exclusion_reason"] for row in body["results"]}
    assert {"", "test", "attention"} <= reasons
    # " blue " passes (stripped, case-insensitive); "Red" and "green" fail.
    assert sum(not row["passed_checks"] for row in body["results"]) == 2


def test_participants_filters(staff_api, rated_study):
    url = _url("api:participant-list", rated_study)
    tests = staff_api.get(url, {"is_test": "true"}).json()
    assert [row["is_test"] for row in tests["results"]] == [True]
    completed_real = staff_api.get(
        url, {"condition": "real", "status": "completed", "is_test": "false"}
    )
    assert completed_real.status_code == 200
    expected = Participant.objects.filter(
        study=rated_study, condition__name="real", status="completed", is_test=False
    )
    assert sorted(r["participant_id"] for r in completed_real.json()["results"]) == sorted(
        expected.values_list("pk", flat=True)
    )


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"condition": "nope"}, "condition"),
        ({"status": "sleeping"}, "status"),
        ({"is_test": "maybe"}, "is_test"),
    ],
)
def test_participants_bad_filter_is_400_with_a_message(staff_api, rated_study, params, field):
    response = staff_api.get(_url("api:participant-list", rated_study), params)
    assert response.status_code == 400
    assert field in response.json()


# ---------------------------------------------------------------------------------------
# Responses


def test_responses_are_the_long_csv_rows_without_test_sessions(staff_api, rated_study):
    response = staff_api.get(_url("api:response-list", rated_study))
    assert response.status_code == 200
    body = response.json()
    expected = Response.objects.filter(
        participant__study=rated_study, trial__isnull=False, participant__is_test=False
    )
    assert body["count"] == expected.count() == 13 * 4
    assert body["next"] is None
    assert list(body["results"][0]) == RESPONSE_COLUMNS
    first = Response.objects.select_related("trial__article", "question", "participant").get(
        pk=body["results"][0]["response_id"]
    )
    row = body["results"][0]
    assert row["value"] == first.value
    assert row["question_key"] == first.question.key
    assert row["article_id"] == first.trial.article_id
    assert row["participant_token"] == str(first.participant.token)
    assert all(not r["is_test"] for r in body["results"])


def test_responses_include_test_sessions_on_request(staff_api, rated_study):
    response = staff_api.get(_url("api:response-list", rated_study), {"include_test": "true"})
    assert response.status_code == 200
    assert (
        response.json()["count"]
        == Response.objects.filter(participant__study=rated_study, trial__isnull=False).count()
        == 14 * 4
    )


def test_responses_filters(staff_api, rated_study):
    url = _url("api:response-list", rated_study)
    rows = staff_api.get(url, {"condition": "generated", "question_key": "credible"}).json()
    assert (
        rows["count"]
        == Response.objects.filter(
            participant__study=rated_study,
            participant__is_test=False,
            participant__condition__name="generated",
            question__key="credible",
            trial__isnull=False,
        ).count()
        == 7
    )
    assert {(r["condition"], r["question_key"]) for r in rows["results"]} == {
        ("generated", "credible")
    }
    real = staff_api.get(url, {"article_origin": "real", "page_size": 5000}).json()
    assert {r["article_origin"] for r in real["results"]} == {"real"}
    assert real["count"] == 6 * 4


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"condition": "nope"}, "condition"),
        ({"question_key": "nope"}, "question_key"),
        ({"article_origin": "alien"}, "article_origin"),
        ({"include_test": "perhaps"}, "include_test"),
    ],
)
def test_responses_bad_filter_is_400_with_a_message(staff_api, rated_study, params, field):
    response = staff_api.get(_url("api:response-list", rated_study), params)
    assert response.status_code == 400
    assert field in response.json()


def test_responses_pagination_default_max_and_links(staff_api, rated_study):
    url = _url("api:response-list", rated_study)
    first = staff_api.get(url, {"page_size": 20})
    assert first.status_code == 200
    body = first.json()
    assert body["count"] == 52
    assert len(body["results"]) == 20
    assert "page=2" in body["next"]
    assert "page_size=20" in body["next"]
    assert first["Link"] == f'<{body["next"]}>; rel="next"'
    ids = [r["response_id"] for r in body["results"]]
    while body["next"]:
        body = staff_api.get(body["next"]).json()
        ids += [r["response_id"] for r in body["results"]]
    assert len(ids) == len(set(ids)) == 52
    # Beyond the largest page size the server's maximum applies; past the end is 404.
    assert len(staff_api.get(url, {"page_size": 10**6}).json()["results"]) == 52
    assert staff_api.get(url, {"page": 99}).status_code == 404


def test_responses_default_page_is_500_rows(staff_api, rated_study):
    for _ in range(125):  # 125 more participants x 4 ratings: 552 rows in all
        make_participant(rated_study, "real", [rating("yes")])
    body = staff_api.get(_url("api:response-list", rated_study)).json()
    assert body["count"] == 552
    assert len(body["results"]) == 500
    assert body["next"] is not None


def test_responses_csv_parses_with_the_long_csv_header(staff_api, rated_study):
    url = _url("api:response-list", rated_study)
    response = staff_api.get(url, {"format": "csv", "page_size": 10, "question_key": "credible"})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    header, rows = _csv_rows(response)
    assert header == RESPONSE_COLUMNS
    assert len(rows) == 10
    assert {row["question_key"] for row in rows} == {"credible"}
    assert 'rel="next"' in response["Link"]
    assert "format=csv" in response["Link"]
    ids = {int(row["response_id"]) for row in rows}
    assert {r.value for r in Response.objects.filter(pk__in=ids)} == {row["value"] for row in rows}


def test_responses_csv_of_an_empty_study_still_has_the_header(staff_api, live_study):
    response = staff_api.get(_url("api:response-list", live_study), {"format": "csv"})
    assert response.status_code == 200
    header, rows = _csv_rows(response)
    assert header == RESPONSE_COLUMNS
    assert rows == []


# ---------------------------------------------------------------------------------------
# Results


def _same(value: object, expected: object) -> bool:
    if isinstance(expected, float) and not math.isfinite(expected):
        return value is None
    if isinstance(expected, float):
        return value == pytest.approx(expected, rel=1e-12, abs=1e-15)
    return value == expected


def test_results_equal_study_report(staff_api, rated_study):
    response = staff_api.get(_url("api:study-results", rated_study))
    assert response.status_code == 200
    body = response.json()
    report = study_report(study=rated_study)
    assert body["analysed"] == report.analysed == 9
    assert body["reference"] == "real"
    assert body["binary_question"] == "credible"
    assert [(s["key"], s["excluded"], s["remaining"]) for s in body["ledger"]] == [
        (s.key, s.excluded, s.remaining) for s in report.ledger
    ]
    for table in ("proportions", "comparisons", "likert", "power"):
        frame = getattr(report, table)
        assert len(body[table]) == len(frame) > 0
        for row, expected in zip(body[table], frame.to_dict("records"), strict=True):
            for column, value in expected.items():
                assert _same(row[column], value), (table, column, row[column], value)
    # Against the reference values of the fixture: 3/4 real, 2/5 generated credible.
    shares = {row["condition"]: row["share"] for row in body["proportions"]}
    assert shares == {"real": 0.75, "generated": 0.4}
    assert body["comparisons"][0]["difference"] == pytest.approx(-0.35)
    assert body["regression"]["n_obs"] == report.regression.n_obs == 9
    terms = [row["term"] for row in body["regression"]["table"]]
    assert terms == list(report.regression.table["term"])


def test_results_of_an_empty_study_are_null_not_nan(staff_api, live_study):
    response = staff_api.get(_url("api:study-results", live_study))
    assert response.status_code == 200
    body = response.json()
    assert body["analysed"] == 0
    assert body["regression"] is None
    assert body["proportions"] == []
    assert "NaN" not in response.content.decode()


# ---------------------------------------------------------------------------------------
# Schema and docs


def test_schema_generates_without_warnings(tmp_path):
    # --fail-on-warn turns any drf-spectacular warning (untyped field, name clash) into
    # an error, so the published schema stays complete.
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "s.yml"))
    text = (tmp_path / "s.yml").read_text()
    assert "/api/studies/{slug}/responses/:" in text
    assert "PaginatedRatingList" in text


def test_schema_and_docs_are_for_staff(staff_api, outsider_api):
    assert staff_api.get(reverse("api:schema")).status_code == 200
    assert outsider_api.get(reverse("api:schema")).status_code == 403
    assert APIClient().get(reverse("api:schema")).status_code == 401
    docs = staff_api.get(reverse("api:docs"))
    assert docs.status_code == 200
    # Swagger UI's assets come from this server (the sidecar), never from a CDN.
    html = docs.content.decode()
    bundle = "drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js"
    assert f"/static/{bundle}" in html
    assert finders.find(bundle) is not None
    assert "cdn" not in html.lower()


def test_page_size_is_capped_at_5000(rf):
    from rest_framework.request import Request as DrfRequest

    from analysis.api_base import RowsPagination

    paginator = RowsPagination()
    assert paginator.get_page_size(DrfRequest(rf.get("/", {"page_size": 10**6}))) == 5000
    assert paginator.get_page_size(DrfRequest(rf.get("/"))) == 500
