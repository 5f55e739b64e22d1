"""The preregistered correction for multiple comparisons (Study.multiple_comparisons): in
the design hash only when it is not the default, so that the hashes stored for studies
launched before the field existed still verify; chosen in the admin's design fields and
frozen with them once the study is live."""

from __future__ import annotations

import hashlib
import json

import pytest
from django.urls import reverse

from surveys.models import Study
from surveys.services import study_design_document, study_design_hash
from tests.factories import StudyFactory
from tests.surveys.test_admin import _study_form_data

pytestmark = pytest.mark.django_db


def test_the_default_correction_leaves_the_design_document_as_it_was(live_study):
    document = study_design_document(study=live_study)
    assert live_study.multiple_comparisons == Study.MultipleComparisons.HOLM
    assert "multiple_comparisons" not in document
    # The hash stored at launch is the one of the document as it was before the field
    # existed: the same keys, serialised the same way.
    old_shape = json.dumps(document, sort_keys=True).encode("utf-8")
    assert hashlib.sha256(old_shape).hexdigest() == live_study.design_hash
    assert study_design_hash(study=live_study) == live_study.design_hash


def test_benjamini_hochberg_enters_the_design_hash(live_study):
    stored = live_study.design_hash
    live_study.multiple_comparisons = Study.MultipleComparisons.BH
    assert study_design_document(study=live_study)["multiple_comparisons"] == "bh"
    assert study_design_hash(study=live_study) != stored
    live_study.multiple_comparisons = Study.MultipleComparisons.HOLM
    assert study_design_hash(study=live_study) == stored


def test_a_draft_chooses_the_correction_among_the_design_fields(admin_client):
    study = StudyFactory.create()
    url = reverse("admin:surveys_study_change", args=[study.pk])
    page = admin_client.get(url)
    design = next(fs for fs in page.context["adminform"] if (fs.name or "").startswith("Design"))
    assert "multiple_comparisons" in design.fields
    response = admin_client.post(url, _study_form_data(study, multiple_comparisons="bh"))
    assert response.status_code == 302
    study.refresh_from_db()
    assert study.multiple_comparisons == "bh"


def test_an_unknown_correction_is_refused(admin_client):
    study = StudyFactory.create()
    url = reverse("admin:surveys_study_change", args=[study.pk])
    response = admin_client.post(url, _study_form_data(study, multiple_comparisons="none"))
    assert response.status_code == 200  # the form again, with its error
    assert "multiple_comparisons" in response.context["adminform"].form.errors
    study.refresh_from_db()
    assert study.multiple_comparisons == "holm"


def test_the_correction_is_frozen_once_live(admin_client, live_study):
    url = reverse("admin:surveys_study_change", args=[live_study.pk])
    page = admin_client.get(url)
    assert "multiple_comparisons" not in page.context["adminform"].form.fields
    assert "Holm (family-wise error rate)" in page.content.decode()  # shown, read-only
    response = admin_client.post(url, _study_form_data(live_study, multiple_comparisons="bh"))
    assert response.status_code == 302
    live_study.refresh_from_db()
    assert live_study.multiple_comparisons == "holm"
    assert study_design_hash(study=live_study) == live_study.design_hash
