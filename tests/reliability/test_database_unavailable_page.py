"""The polite 503 page for a database that is unreachable for a moment."""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import InterfaceError, OperationalError
from django.test import Client, RequestFactory

from studyplatform.middleware import DatabaseUnavailableMiddleware, server_error
from surveys.models import Study


def _assert_polite_retry_page(response) -> None:  # type: ignore[no-untyped-def]
    body = response.content.decode()
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response["Cache-Control"] == "no-store"
    assert "Please try again in a moment" in body
    assert "Traceback" not in body
    # A Content-Security-Policy without 'unsafe-inline' must not break the page.
    assert "style=" not in body
    assert "<script" not in body


@pytest.mark.django_db
@pytest.mark.parametrize("error", [OperationalError, InterfaceError])
def test_database_failure_in_a_view_gives_the_retry_page(error: type[Exception]) -> None:
    client = Client(raise_request_exception=False)
    with mock.patch.object(
        Study.objects, "filter", side_effect=error("server closed the connection")
    ):
        response = client.get("/s/some-study/?PROLIFIC_PID=abc")
    _assert_polite_retry_page(response)


@pytest.mark.django_db
def test_other_errors_in_a_view_are_left_to_the_500_page() -> None:
    client = Client(raise_request_exception=False)
    with mock.patch.object(Study.objects, "filter", side_effect=ValueError("a bug")):
        response = client.get("/s/some-study/")
    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()


def test_middleware_passes_other_exceptions_on() -> None:
    middleware = DatabaseUnavailableMiddleware(lambda request: None)  # type: ignore[arg-type,return-value]
    request = RequestFactory().get("/")
    assert middleware.process_exception(request, ValueError("a bug")) is None


def test_handler500_gives_the_retry_page_for_a_database_failure_outside_a_view() -> None:
    request = RequestFactory().get("/p/x/")
    try:
        raise OperationalError("the database system is shutting down")
    except OperationalError:
        response = server_error(request)
    _assert_polite_retry_page(response)


def test_handler500_gives_the_500_page_otherwise() -> None:
    request = RequestFactory().get("/p/x/")
    try:
        raise ValueError("a bug")
    except ValueError:
        response = server_error(request)
    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()
