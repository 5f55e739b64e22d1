"""The completion URL is the one link participants are sent to at the end: http(s) only,
refused by the model (so by the admin form and full_clean), never rendered when another
scheme was stored before the rule, and nothing in a request can change where it points."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.forms import modelform_factory

from surveys.models import Study
from surveys.selectors import completion_link
from tests.factories import StudyFactory
from tests.surveys.test_outcomes import take_study

HOSTILE = [
    "javascript:alert(document.cookie)",
    " JavaScript:alert(1)",
    "JAVASCRIPT:alert(1)",
    "java\tscript:alert(1)",
    "\x01javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "//evil.example/complete?cc={code}",
    "/relative/complete",
    "ftp://files.example/complete",
    "https://ok.example/complete?cc={code}\njavascript:alert(1)",
    "file:///etc/passwd",
]
GOOD = [
    "https://app.prolific.com/submissions/complete?cc={code}",
    "http://localhost:8000/done?code={code}",
    "https://www.mturk.com/mturk/externalSubmit",
]


@pytest.mark.django_db
@pytest.mark.parametrize("url", HOSTILE)
def test_model_and_admin_form_refuse_other_schemes(url: str) -> None:
    study = StudyFactory.build(slug="s1", completion_url=url)
    with pytest.raises(ValidationError) as error:
        study.full_clean()
    assert "completion_url" in error.value.message_dict
    form = modelform_factory(Study, fields=["completion_url"])({"completion_url": url})
    assert not form.is_valid()
    assert "completion_url" in form.errors


@pytest.mark.django_db
@pytest.mark.parametrize("url", GOOD)
def test_http_and_https_addresses_are_accepted(url: str) -> None:
    StudyFactory.build(slug="s1", completion_url=url).full_clean()


@pytest.mark.parametrize("url", HOSTILE)
def test_a_stored_hostile_url_gives_no_link(url: str) -> None:
    assert completion_link(study=Study(completion_url=url), code="C1") == ""


def test_the_code_cannot_break_out_of_the_configured_url() -> None:
    study = Study(completion_url="https://panel.example/complete?cc={code}")
    link = completion_link(study=study, code='C1"&next=//evil')
    assert link.startswith("https://panel.example/complete?cc=C1")
    assert "//evil" not in link
    assert '"' not in link


@pytest.mark.django_db
def test_debrief_of_a_study_stored_with_javascript_url_shows_the_code_without_a_link() -> None:
    study = StudyFactory.create_live(completion_code="CODE42")
    # As a row written before the validator existed: update() skips validation.
    Study.objects.filter(pk=study.pk).update(completion_url="javascript:alert(1)//{code}")
    client, participant = take_study(study, pid="P1", attention="Blue")
    response = client.get(f"/p/{participant.token}/debrief/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "CODE42" in html
    assert "javascript:" not in html
    assert "data-completion-url" not in html


@pytest.mark.django_db
def test_the_debrief_links_only_to_the_configured_url_whatever_the_query() -> None:
    study = StudyFactory.create_live(
        completion_code="CODE42", completion_url="https://panel.example/done?cc={code}"
    )
    client, participant = take_study(study, pid="P1", attention="Blue")
    response = client.get(
        f"/p/{participant.token}/debrief/",
        {"next": "https://evil.example/", "completion_url": "https://evil.example/"},
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert 'href="https://panel.example/done?cc=CODE42"' in html
    assert "evil.example" not in html
