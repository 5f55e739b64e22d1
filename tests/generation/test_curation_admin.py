"""Curation in the admin: side-by-side page, flag badges, approve/reject buttons, filters."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse

from generation.models import Sample
from surveys.models import Article
from tests.factories import GenerationRunFactory, SampleFactory

pytestmark = pytest.mark.django_db

SAMPLES = reverse("admin:generation_sample_changelist")


def review_url(sample: Sample) -> str:
    return reverse("admin:generation_sample_review", args=[sample.pk])


def change_url(sample: Sample) -> str:
    return reverse("admin:generation_sample_change", args=[sample.pk])


def test_change_page_shows_both_texts_flags_and_the_buttons(admin_client: Client) -> None:
    sample = SampleFactory.create(flags=["too_short", "source_overlap"], word_budget=120)
    response = admin_client.get(change_url(sample))
    assert response.status_code == 200
    page = response.content.decode()
    assert f"Real article: {sample.source_article.title}" in page
    assert sample.source_article.paragraphs[1] in page
    assert sample.clean_text in page
    assert "display:flex" in page  # two columns
    assert page.count('class="credence-flag"') >= 2
    assert "too_short" in page
    assert "source_overlap" in page
    assert f'action="{review_url(sample)}"' in page
    for key, decision in (("a", "approve"), ("r", "reject"), ("n", "approve_next")):
        assert f'value="{decision}"' in page
        assert f'accesskey="{key}"' in page
    assert 'document.addEventListener("keydown"' in page


def test_approve_button_creates_the_article(admin_client: Client) -> None:
    sample = SampleFactory.create()
    response = admin_client.post(review_url(sample), {"decision": "approve"})
    assert response.status_code == 302
    assert response["Location"] == change_url(sample)
    sample.refresh_from_db()
    assert (sample.review, sample.reviewed_by, sample.selected_by) == (
        "approved",
        "admin",
        "curated",
    )
    assert sample.article is not None
    assert sample.article.origin == Article.Origin.GENERATED


def test_reject_button_rejects(admin_client: Client) -> None:
    sample = SampleFactory.create()
    response = admin_client.post(review_url(sample), {"decision": "reject"})
    assert response.status_code == 302
    sample.refresh_from_db()
    assert sample.review == Sample.Review.REJECTED
    assert not Article.objects.generated().exists()


def test_approve_and_next_opens_the_next_pending_sample_of_the_run(admin_client: Client) -> None:
    run = GenerationRunFactory.create()
    first, done, following = (SampleFactory.create(run=run, sample_index=i) for i in range(3))
    Sample.objects.filter(pk=done.pk).update(review=Sample.Review.REJECTED)
    SampleFactory.create()  # another run's pending sample is never next
    response = admin_client.post(review_url(first), {"decision": "approve_next"})
    assert response.status_code == 302
    assert response["Location"] == change_url(following)
    response = admin_client.post(review_url(following), {"decision": "approve_next"})
    assert response.status_code == 302
    assert response["Location"] == f"{SAMPLES}?run__id__exact={run.pk}"
    assert list(run.samples.order_by("id").values_list("review", flat=True)) == [
        "approved",
        "rejected",
        "approved",
    ]


def test_a_sample_without_text_is_not_approved_and_the_reason_shown(admin_client: Client) -> None:
    sample = SampleFactory.create(clean_text="")
    response = admin_client.post(review_url(sample), {"decision": "approve"}, follow=True)
    assert response.status_code == 200
    assert "no complete sentence" in response.content.decode()
    sample.refresh_from_db()
    assert sample.review == Sample.Review.PENDING


@pytest.mark.parametrize("data", [{"decision": "delete"}, {}])
def test_an_unknown_decision_changes_nothing(admin_client: Client, data: dict[str, Any]) -> None:
    sample = SampleFactory.create()
    response = admin_client.post(review_url(sample), data, follow=True)
    assert response.status_code == 200
    assert "Unknown decision" in response.content.decode()
    sample.refresh_from_db()
    assert sample.review == Sample.Review.PENDING


def test_review_is_post_only(admin_client: Client) -> None:
    sample = SampleFactory.create()
    assert admin_client.get(review_url(sample), {"decision": "approve"}).status_code == 405
    sample.refresh_from_db()
    assert sample.review == Sample.Review.PENDING


def test_review_of_a_missing_sample_is_404(admin_client: Client) -> None:
    url = reverse("admin:generation_sample_review", args=[987654])
    assert admin_client.post(url, {"decision": "approve"}).status_code == 404


def test_non_staff_are_sent_to_login_and_nothing_changes(
    client: Client, django_user_model: Any
) -> None:
    sample = SampleFactory.create()
    user = django_user_model.objects.create_user(username="pat", password="x")
    client.force_login(user)
    response = client.post(review_url(sample), {"decision": "approve"})
    assert response.status_code == 302
    assert "/login/" in response["Location"]
    sample.refresh_from_db()
    assert sample.review == Sample.Review.PENDING


def test_staff_without_change_permission_are_refused(
    client: Client, django_user_model: Any
) -> None:
    sample = SampleFactory.create()
    viewer = django_user_model.objects.create_user(username="viewer", password="x", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_sample"))
    client.force_login(viewer)
    assert client.get(change_url(sample)).status_code == 200
    assert client.post(review_url(sample), {"decision": "approve"}).status_code == 403
    sample.refresh_from_db()
    assert sample.review == Sample.Review.PENDING
    assert not Article.objects.generated().exists()


def test_list_shows_flags_and_word_counts_and_filters_by_flag(admin_client: Client) -> None:
    flagged = SampleFactory.create(flags=["repetition"], clean_text="One two three four five.")
    clean = SampleFactory.create(flags=[])
    response = admin_client.get(SAMPLES)
    assert response.status_code == 200
    page = response.content.decode()
    assert 'class="credence-flag"' in page
    assert '<td class="field-words">5</td>' in page
    only_flagged = admin_client.get(SAMPLES, {"flag": "repetition"})
    assert only_flagged.status_code == 200
    assert list(only_flagged.context["cl"].result_list) == [flagged]
    unflagged = admin_client.get(SAMPLES, {"flag": "none"})
    assert list(unflagged.context["cl"].result_list) == [clean]


@pytest.mark.parametrize(
    ("params", "expected"),
    [({"run__model_name": "gpt2"}, "gpt"), ({"review__exact": "approved"}, "approved")],
)
def test_list_filters_by_model_and_review(
    admin_client: Client, params: dict[str, str], expected: str
) -> None:
    gpt = SampleFactory.create(run__model_name="gpt2")
    approved = SampleFactory.create(review=Sample.Review.APPROVED)
    response = admin_client.get(SAMPLES, params)
    assert response.status_code == 200
    wanted = {"gpt": gpt, "approved": approved}[expected]
    assert list(response.context["cl"].result_list) == [wanted]


def test_the_rank_is_edited_in_the_form(admin_client: Client) -> None:
    sample = SampleFactory.create()
    response = admin_client.post(change_url(sample), {"rank": "2"})
    assert response.status_code == 302
    sample.refresh_from_db()
    assert sample.rank == 2
    assert sample.review == Sample.Review.PENDING


def test_a_fixed_length_run_needs_a_word_budget(admin_client: Client) -> None:
    from generation.models import GenerationRun
    from tests.factories import RealArticleFactory

    article = RealArticleFactory.create()
    form = {
        "name": "Fixed",
        "model_name": "embedded",
        "source_articles": [article.pk],
        "prompt_kind": "first_two_paragraphs",
        "samples_per_prompt": "1",
        "max_new_tokens": "50",
        "top_k": "40",
        "top_p": "1.0",
        "temperature": "1.0",
        "seed": "0",
        "batch_size": "8",
        "context_articles": "0",
        "length_match": "fixed",
        "word_budget": "",
    }
    url = reverse("admin:generation_generationrun_add")
    response = admin_client.post(url, form)
    assert response.status_code == 200
    assert "needs a word budget" in response.content.decode()
    assert not GenerationRun.objects.exists()
    response = admin_client.post(url, {**form, "word_budget": "150"})
    assert response.status_code == 302
    run = GenerationRun.objects.get()
    assert (run.length_match, run.word_budget, run.prepend_lede) == ("fixed", 150, False)
    assert run.prompt_kind == "first_two_paragraphs"
