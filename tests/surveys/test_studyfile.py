"""A study as a file: export and import round-trip a launched study (same design hash in
an emptied database, byte-identical exports), schema errors name their line and field,
nothing is written on error, hostile text survives, teams stay apart, and the admin's
dry run and confirm."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.contrib.auth.models import User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.urls import reverse

from generation.models import GenerationRun, Sample
from surveys.models import (
    WIKINEWS_ATTRIBUTION,
    Article,
    Condition,
    Participant,
    Question,
    Study,
    Team,
    TeamMembership,
)
from surveys.services import study_design_hash, study_set_status
from surveys.studyfile import study_file_export, study_file_import
from surveys.studyfile.export import (
    ARTICLE_FIELDS,
    CONDITION_FIELDS,
    NOT_EXPORTED,
    PANEL_FIELDS,
    QUESTION_FIELDS,
    RULE_FIELDS,
    RUN_FIELDS,
    SAMPLE_FIELDS,
    STUDY_FIELDS,
    TEXT_FIELDS,
)
from tests.factories import RealArticleFactory
from tests.surveys.builders import within_study
from tests.surveys.studyfile_builders import WEIGHTS_SHA, empty_database, launched_study

pytestmark = pytest.mark.django_db

HOSTILE = (
    '<script>alert("x")</script> =HYPERLINK("http://evil.example","click") '
    "+1+2 @SUM(A1) \u202e reversed \ufeff bom: 'quotes' \"and\" | > # * &anchor"
)


def _errors(text: str) -> list[str]:
    result = study_file_import(text=text, team=None)
    assert not result.ok
    return [str(e) for e in result.errors]


# ---------------------------------------------------------------------------------------
# Round trip


def test_import_of_a_launched_studys_export_into_an_empty_database_has_its_design_hash() -> None:
    study = launched_study()
    frozen = study.design_hash
    assert frozen
    text = study_file_export(study=study)
    empty_database()
    team = Team.objects.create(name="Importers")

    result = study_file_import(text=text, team=team)

    assert result.ok, result.errors
    imported = result.study
    assert imported is not None
    assert study_design_hash(study=imported) == frozen == result.design_hash
    assert result.same_design is True
    # A draft of the importing team, without participants.
    assert imported.status == Study.Status.DRAFT
    assert imported.team == team
    assert imported.design_hash == ""
    assert not Participant.objects.filter(study=imported).exists()
    # And it can be launched again, to the same frozen hash; then the import of the
    # export exports to the same bytes.
    relaunched = study_set_status(study=imported, status=Study.Status.LIVE)
    assert relaunched.design_hash == frozen
    assert study_file_export(study=relaunched) == text


def test_round_trip_keeps_manipulations_scoring_checks_rules_and_provenance() -> None:
    study = launched_study()
    text = study_file_export(study=study)
    empty_database()

    imported = study_file_import(text=text, team=None).study

    assert imported is not None
    branded = imported.conditions.get(name="gpt2-large")
    assert branded.branding == "The Daily Chronicle"
    assert branded.disclaimer == "This article was written by an AI system."
    assert branded.quota == 120
    assert imported.conditions.get(name="real").is_reference
    assert imported.questions.get(key="credible").scoring == {"role": "credible"}
    assert imported.questions.get(key="attention").after_article == 1
    assert imported.questions.get(key="understood").scope == Question.Scope.COMPREHENSION
    assert list(imported.exclusion_rules.values_list("kind", "threshold", "question_key")) == [
        ("too_fast", 15.0, ""),
        ("straight_lining", None, "believable"),
    ]
    assert imported.completion_code == "C0DE42"
    assert imported.consent_text == "Consent.\n\nSecond paragraph with  two spaces."
    real = imported.conditions.get(name="real").articles.get(external_id="wn-0")
    assert (real.url, real.license, real.published) == (
        "https://en.wikinews.org/wiki/" + real.url.rsplit("/", 1)[1],
        "CC-BY-2.5",
        date(2020, 1, 1),
    )
    assert real.attribution == WIKINEWS_ATTRIBUTION
    generated = branded.articles.get(source_article=real)
    sample = Sample.objects.get(article=generated)
    assert sample.run.model_identity["weights_sha256"] == WEIGHTS_SHA
    assert (sample.run.dtype, sample.run.batch_size, sample.run.seed) == ("float32", 8, 20190820)
    assert sample.run.temperature == 0.9
    assert sample.prompt == real.lede
    assert sample.raw_text.endswith("<|endoftext|>")
    assert sample.clean_text.startswith("The mayor said")
    assert sample.settings["dtype"] == "float32"
    assert sample.flags == ["too_short"]
    assert sample.review == Sample.Review.APPROVED
    assert GenerationRun.objects.get().samples_done == 3


def test_exporting_twice_gives_the_same_bytes_without_ids_or_times() -> None:
    study = launched_study()
    first = study_file_export(study=study)
    # Reordering rows in the database changes nothing in the file.
    Article.objects.filter(pk__in=study.conditions.values("articles")).update(in_demo_pool=True)
    assert study_file_export(study=study) == first
    data = yaml.safe_load(first)
    assert "id" not in data["study"]
    assert "team" not in data["study"]
    assert not re.search(r"\b20\d\d-\d\d-\d\dT", first)  # no timestamps
    assert data["exported_from"] == {"status": "live", "design_hash": study.design_hash}


@pytest.mark.parametrize(
    ("model", "exported"),
    [
        ("surveys.Study", {*STUDY_FIELDS, *TEXT_FIELDS.values(), *PANEL_FIELDS, *NOT_EXPORTED}),
        ("surveys.Condition", {*CONDITION_FIELDS, "id", "study", "articles"}),
        ("surveys.Question", {*QUESTION_FIELDS, "id", "study"}),
        ("surveys.ExclusionRule", {*RULE_FIELDS, "id", "study"}),
        (
            "surveys.Article",
            {
                *ARTICLE_FIELDS,
                "id",
                "origin",
                "source_article",
                "team",
                "word_count",
                "content_hash",
                "created_at",
            },
        ),
        (
            "generation.GenerationRun",
            {
                *RUN_FIELDS,
                "id",
                "source_articles",
                "status",
                "error",
                "samples_total",
                "samples_done",
                "started_at",
                "finished_at",
                "team",
                "created_at",
            },
        ),
        (
            "generation.Sample",
            {
                *SAMPLE_FIELDS,
                "id",
                "run",
                "source_article",
                "article",
                "reviewed_at",
                "created_at",
            },
        ),
    ],
)
def test_every_model_field_is_exported_or_deliberately_left_out(
    model: str, exported: set[str]
) -> None:
    """A new field fails here until someone decides whether a study file carries it."""
    from django.apps import apps

    fields = {
        f.name
        for f in apps.get_model(model)._meta.get_fields()
        if f.concrete or (f.many_to_many and not f.auto_created)
    }
    fields = {f for f in fields if not f.startswith("_")}
    assert fields - exported == set(), f"decide whether {model} fields go in the study file"


def test_a_within_subjects_design_round_trips_to_its_hash() -> None:
    study = within_study(stories=8, real_each=2, generated_each=2)
    text = study_file_export(study=study)
    empty_database()

    imported = study_file_import(text=text, team=None).study

    assert imported is not None
    assert imported.design == Study.Design.WITHIN
    assert study_design_hash(study=imported) == study.design_hash
    assert sorted(imported.conditions.values_list("per_participant", flat=True)) == [2, 2]


def test_the_preregistration_and_the_replication_plan_round_trip_to_their_hash() -> None:
    study = launched_study()
    Study.objects.filter(pk=study.pk).update(
        status=Study.Status.DRAFT,
        design_hash="",
        multiple_comparisons="bh",
        hypotheses="Generated articles are rated credible less often.",
        primary_comparison="gpt2-large",
        original_citation="Kreps, McCain & Brundage (2022)",
        equivalence_bound=0.1,
    )
    study.conditions.filter(name="gpt2-large").update(original_rate=0.72, original_n=200)
    study.refresh_from_db()
    study = study_set_status(study=study, status=Study.Status.LIVE)
    text = study_file_export(study=study)
    assert "multiple_comparisons: bh" in text
    assert "original_rate: 0.72" in text
    empty_database()

    imported = study_file_import(text=text, team=None).study

    assert imported is not None
    assert (imported.multiple_comparisons, imported.primary_comparison) == ("bh", "gpt2-large")
    assert imported.equivalence_bound == 0.1
    generated = imported.conditions.get(name="gpt2-large")
    assert (generated.original_rate, generated.original_n) == (0.72, 200)
    assert study_design_hash(study=imported) == study.design_hash


def test_schema_lengths_match_the_models() -> None:
    """The schema's maxLength values are the models' (the importer checks the models'
    rules too, but the schema is what other tools read)."""
    from django.apps import apps

    from surveys.studyfile import study_schema

    defs = study_schema()["$defs"]
    pairs = {
        "study": "surveys.Study",
        "condition": "surveys.Condition",
        "question": "surveys.Question",
        "exclusion_rule": "surveys.ExclusionRule",
        "article": "surveys.Article",
        "generation_run": "generation.GenerationRun",
        "sample": "generation.Sample",
    }
    checked = 0
    for name, label in pairs.items():
        fields = {f.name: f for f in apps.get_model(label)._meta.concrete_fields}
        properties = (
            {**defs[name]["properties"], **defs["study"]["properties"]["panel"]["properties"]}
            if name == "study"
            else defs[name]["properties"]
        )
        for key, spec in properties.items():
            if "maxLength" in spec and key in fields:
                assert spec["maxLength"] == fields[key].max_length, f"{name}.{key}"
                checked += 1
    assert checked >= 20


def test_hostile_strings_round_trip_as_plain_text() -> None:
    study = launched_study()
    Study.objects.filter(pk=study.pk).update(
        debrief_text=HOSTILE, title="=cmd|' /C calc'!A0", status=Study.Status.DRAFT
    )
    Condition.objects.filter(study=study, name="gpt2-large").update(disclaimer=HOSTILE)
    Question.objects.filter(study=study, key="credible").update(text=HOSTILE + "\n\nline 2 ")
    study.refresh_from_db()
    text = study_file_export(study=study)
    empty_database()

    imported = study_file_import(text=text, team=None).study

    assert imported is not None
    assert imported.debrief_text == HOSTILE
    assert imported.title == "=cmd|' /C calc'!A0"
    assert imported.conditions.get(name="gpt2-large").disclaimer == HOSTILE
    assert imported.questions.get(key="credible").text == HOSTILE + "\n\nline 2 "


def test_a_nul_character_is_refused_with_its_line_and_nothing_is_written() -> None:
    text = study_file_export(study=launched_study())
    hostile = text.replace("title: Kreps replication", 'title: "Kreps\\0replication"')
    assert hostile != text
    line = next(i for i, t in enumerate(hostile.splitlines(), 1) if "Kreps\\0" in t)
    before = Study.objects.count()

    errors = _errors(hostile.replace("slug: kreps-replication", "slug: other"))

    assert errors == [f"line {line}: study.title: contains a NUL character, which cannot be stored"]
    assert Study.objects.count() == before


# ---------------------------------------------------------------------------------------
# Schema errors: line and field, nothing written


def _line(text: str, needle: str) -> int:
    return next(i for i, t in enumerate(text.splitlines(), 1) if needle in t)


@pytest.fixture
def exported() -> str:
    text = study_file_export(study=launched_study())
    empty_database()
    return text


def test_wrong_type_names_line_and_field(exported: str) -> None:
    bad = exported.replace("  quota: 120\n", "  quota: many\n", 1)
    assert _errors(bad) == [
        f"line {_line(bad, 'quota: many')}: conditions[0].quota: expected integer or null, "
        "got str 'many'"
    ]


def test_missing_field_names_line_and_field(exported: str) -> None:
    bad = exported.replace("  label: GPT-2 774M\n", "")
    line = _line(bad, "- name: gpt2-large")
    assert _errors(bad) == [f"line {line}: conditions[0].label: missing required field"]


def test_unknown_key_names_its_line(exported: str) -> None:
    bad = exported.replace("  branding: The Daily", "  colour: red\n  branding: The Daily", 1)
    (error,) = _errors(bad)
    assert error.startswith(f"line {_line(bad, 'colour: red')}: conditions[0].colour: unknown")


def test_bad_enum_names_line_and_field(exported: str) -> None:
    bad = exported.replace("kind: slider", "kind: essay")
    (error,) = _errors(bad)
    assert error.startswith(f"line {_line(bad, 'kind: essay')}: questions[")
    assert ".kind: 'essay' is not one of 'binary'" in error


def test_several_errors_are_all_listed_in_line_order(exported: str) -> None:
    bad = exported.replace("kind: slider", "kind: essay").replace("quota: 120", "quota: -1", 1)
    errors = _errors(bad)
    assert len(errors) == 2
    lines = [int(e.split(":")[0].removeprefix("line ")) for e in errors]
    assert lines == sorted(lines)


def test_model_rules_and_references_are_checked_with_their_line(exported: str) -> None:
    bad = exported.replace(
        "completion_url: https://example.org", "completion_url: javascript:alert(1)//"
    )
    refs = re.findall(r"^  - ([0-9a-f]{16})$", bad, flags=re.MULTILINE)
    bad = bad.replace(f"  - {refs[0]}\n", "  - nosuchref\n", 1)
    errors = _errors(bad)
    assert any(
        e.startswith(f"line {_line(bad, 'javascript:')}: study.panel.completion_url: Enter an")
        for e in errors
    )
    assert f"line {_line(bad, 'nosuchref')}: conditions[0].articles[0]: no article with ref " in (
        errors[-1] if "nosuchref" in errors[-1] else " ".join(errors)
    )


def test_an_edited_text_with_a_stale_content_hash_is_refused(exported: str) -> None:
    bad = exported.replace("title: Council approves budget", "title: Council rejects budget", 1)
    (error,) = _errors(bad)
    assert ".content_hash: does not match the title and body" in error


def test_an_unquoted_date_stays_a_date_string(exported: str) -> None:
    text = exported.replace("published: '2020-01-01'", "published: 2020-01-01")
    assert text != exported
    result = study_file_import(text=text, team=None)
    assert result.ok, result.errors
    assert Article.objects.get(external_id="wn-0").published == date(2020, 1, 1)


def test_python_tags_and_out_of_range_numbers_are_refused(exported: str) -> None:
    tagged = exported.replace(
        "title: Kreps replication", "title: !!python/object/apply:os.system [ls]"
    )
    assert _errors(tagged)[0].startswith(f"line {_line(tagged, '!!python')}: not valid YAML")
    huge = exported.replace("  seed: 20190820\n", f"  seed: {2**70}\n")
    (error,) = _errors(huge)
    assert error.startswith(f"line {_line(huge, str(2**70))}: generation_runs[0].seed: ")
    assert not Study.objects.exists()


def test_invalid_yaml_and_aliases_are_refused_with_a_line() -> None:
    assert _errors("format: [unclosed\nstudy: {}\n")[0].startswith("line ")
    bomb = "a: &x [1, 2]\nb: *x\n"
    assert _errors(bomb) == [
        "line 1: YAML anchors and aliases (&, *) are not allowed in a study file"
    ]


def test_nothing_is_written_when_the_database_rejects_the_file(exported: str) -> None:
    """Checks against the database (a slug in use) also stop the import before writing."""
    study_file_import(text=exported, team=None)
    counts = (Study.objects.count(), Article.objects.count(), Question.objects.count())

    errors = _errors(exported)

    assert "already exists: import it under another slug" in errors[0]
    assert (Study.objects.count(), Article.objects.count(), Question.objects.count()) == counts
    # Under another slug it imports, reusing every article.
    again = study_file_import(text=exported, team=None, slug="kreps-2")
    assert again.ok
    assert again.articles_created == 0
    assert again.articles_reused == 6
    assert Article.objects.count() == counts[1]


def test_dry_run_counts_and_writes_nothing(exported: str) -> None:
    result = study_file_import(text=exported, team=None, dry_run=True)
    assert result.ok
    assert (result.conditions, result.questions, result.exclusion_rules) == (2, 7, 2)
    assert (result.articles_created, result.generation_runs) == (6, 1)
    assert result.study is None
    assert not Study.objects.exists()
    assert not Article.objects.exists()
    assert not GenerationRun.objects.exists()


# ---------------------------------------------------------------------------------------
# Teams


def test_another_teams_article_is_not_reused_and_not_named() -> None:
    alpha = Team.objects.create(name="Alpha")
    beta = Team.objects.create(name="Beta")
    study = launched_study(team=alpha)
    text = study_file_export(study=study)
    before = Study.objects.count()

    result = study_file_import(text=text, team=beta, slug="beta-copy")

    assert not result.ok
    assert Study.objects.count() == before
    for error in result.errors:
        assert "another team already has an article with this title and text" in str(error)
        assert not re.search(r"#\d+|article \d+", str(error))
    # The shared pool is reused.
    Article.objects.update(team=None)
    shared = study_file_import(text=text, team=beta, slug="beta-copy")
    assert shared.ok
    assert shared.articles_reused == 6


# ---------------------------------------------------------------------------------------
# Commands


def test_commands_round_trip_through_a_file(tmp_path: Path) -> None:
    study = launched_study()
    path = tmp_path / "study.yaml"
    call_command("study_export", study.slug, "-o", str(path), stderr=io.StringIO())
    first = path.read_bytes()
    call_command("study_export", study.slug, "-o", str(path), stderr=io.StringIO())
    assert path.read_bytes() == first
    team = Team.objects.create(name="Lab")
    out = io.StringIO()

    call_command("study_import", str(path), "--team", "Lab", "--slug", "copy", stdout=out)

    copy = Study.objects.get(slug="copy")
    assert copy.team == team
    assert copy.status == Study.Status.DRAFT
    assert study_design_hash(study=copy) == study.design_hash
    assert "same design hash" in out.getvalue()
    with pytest.raises(CommandError, match="already exists"):
        call_command("study_import", str(path), "--slug", "copy")


# ---------------------------------------------------------------------------------------
# Admin


@dataclass
class Lab:
    alpha: Team
    beta: Team
    study: Study
    researcher: Client  # alpha researcher
    analyst: Client  # alpha analyst
    outsider: Client  # beta researcher


def _client(name: str, team: Team, role: str) -> Client:
    user = User.objects.create_user(name, password="pw", is_staff=True)
    TeamMembership.objects.create(team=team, user=user, role=role)
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def lab() -> Lab:
    alpha = Team.objects.create(name="Alpha")
    beta = Team.objects.create(name="Beta")
    return Lab(
        alpha=alpha,
        beta=beta,
        study=launched_study(team=alpha),
        researcher=_client("ra", alpha, TeamMembership.Role.RESEARCHER),
        analyst=_client("aa", alpha, TeamMembership.Role.ANALYST),
        outsider=_client("rb", beta, TeamMembership.Role.RESEARCHER),
    )


def _export_url(study: Study) -> str:
    return reverse("admin:surveys_study_file_export", args=[study.pk])


def test_admin_export_is_the_commands_file_for_the_team_only(lab: Lab) -> None:
    change = lab.researcher.get(reverse("admin:surveys_study_change", args=[lab.study.pk]))
    assert _export_url(lab.study) in change.content.decode()
    for client in (lab.researcher, lab.analyst):
        response = client.get(_export_url(lab.study))
        assert response.status_code == 200
        assert response["Content-Disposition"] == (
            'attachment; filename="study-kreps-replication.yaml"'
        )
        assert response.content.decode() == study_file_export(study=lab.study)
    assert lab.outsider.get(_export_url(lab.study)).status_code == 404
    assert (
        lab.outsider.get(reverse("admin:surveys_study_file_export", args=["x"])).status_code == 404
    )


def test_admin_export_action_on_the_team_scoped_list(lab: Lab) -> None:
    url = reverse("admin:surveys_study_changelist")
    data = {"action": "export_study_file", "_selected_action": [lab.study.pk]}
    response = lab.analyst.post(url, data)
    assert response.status_code == 200
    assert response.content.decode() == study_file_export(study=lab.study)
    # Another team's study is not in the outsider's list: nothing is exported.
    response = lab.outsider.post(url, data)
    assert "kreps-replication" not in response.content.decode()


def _upload(client: Client, text: str, **fields: object) -> str:
    upload = SimpleUploadedFile("study.yaml", text.encode("utf-8"), "application/yaml")
    url = reverse("admin:surveys_study_file_import")
    response = client.post(url, {"file": upload, **fields})
    assert response.status_code == 200
    return response.content.decode()


def test_admin_import_dry_run_then_confirm(lab: Lab) -> None:
    text = study_file_export(study=lab.study)
    studies = Study.objects.count()
    page = _upload(lab.researcher, text, team=lab.alpha.pk, slug="alpha-copy")
    assert Study.objects.count() == studies  # the dry run wrote nothing
    assert 'data-count="conditions">2<' in page
    assert 'data-count="questions">7<' in page
    assert 'data-count="articles_reused">6<' in page
    assert "the same as the exported study" in page
    hidden = dict(re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)"', page))
    assert set(hidden) == {"csrfmiddlewaretoken", "token"}
    url = reverse("admin:surveys_study_file_import")
    # The dry run's token is the researcher's own: another user confirms nothing with it.
    stolen = lab.outsider.post(url, {**hidden, "confirm": "1"})
    assert stolen.status_code == 302
    assert "That dry run has expired" in lab.outsider.get(url).content.decode()
    assert Study.objects.count() == studies

    response = lab.researcher.post(url, {**hidden, "confirm": "1"})

    copy = Study.objects.get(slug="alpha-copy")
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:surveys_study_change", args=[copy.pk])
    assert copy.team == lab.alpha
    assert copy.status == Study.Status.DRAFT
    assert study_design_hash(study=copy) == lab.study.design_hash


def test_admin_confirm_checks_the_team_again(lab: Lab) -> None:
    page = _upload(lab.researcher, study_file_export(study=lab.study), team=lab.alpha.pk, slug="c")
    token = re.search(r'name="token" value="([^"]*)"', page)
    assert token is not None
    TeamMembership.objects.filter(team=lab.alpha, user__username="ra").delete()
    TeamMembership.objects.create(
        team=lab.beta, user=User.objects.get(username="ra"), role=TeamMembership.Role.RESEARCHER
    )

    response = lab.researcher.post(
        reverse("admin:surveys_study_file_import"), {"token": token.group(1), "confirm": "1"}
    )

    assert response.status_code == 403
    assert not Study.objects.filter(slug="c").exists()


def test_admin_import_shows_errors_and_offers_no_confirm(lab: Lab) -> None:
    text = study_file_export(study=lab.study).replace("kind: slider", "kind: essay")
    page = _upload(lab.researcher, text, team=lab.alpha.pk, slug="alpha-copy")
    assert "nothing was imported" in page
    assert "kind: &#x27;essay&#x27; is not one of" in page
    assert "studyfile_confirm_form" not in page
    assert not Study.objects.filter(slug="alpha-copy").exists()


def test_admin_import_is_for_researchers_into_their_own_teams(lab: Lab) -> None:
    text = study_file_export(study=lab.study)
    url = reverse("admin:surveys_study_file_import")
    assert lab.analyst.get(url).status_code == 403
    # The outsider cannot import into alpha, neither at the dry run nor at the confirm.
    page = _upload(lab.outsider, text, team=lab.alpha.pk, slug="stolen")
    assert "Select a valid choice" in page
    response = lab.outsider.post(url, {"token": "x", "confirm": "1"})
    assert response.status_code == 302
    # Into their own team, alpha's articles are not theirs to reuse, and are not named.
    page = _upload(lab.outsider, text, team=lab.beta.pk, slug="stolen")
    assert "another team already has an article with this title and text" in page
    assert not Study.objects.filter(slug="stolen").exists()
    assert not Study.objects.filter(team=lab.beta).exists()


def test_export_reads_the_same_few_queries_however_many_articles(
    django_assert_max_num_queries: Any,
) -> None:
    study = launched_study()
    with django_assert_max_num_queries(10) as small:
        study_file_export(study=study)
    bigger = launched_study(slug="bigger")
    condition = bigger.conditions.get(name="real")
    Study.objects.filter(pk=bigger.pk).update(status=Study.Status.DRAFT)
    condition.articles.add(*RealArticleFactory.create_batch(20))
    with django_assert_max_num_queries(len(small.captured_queries)):
        study_file_export(study=bigger)


def test_long_values_and_whole_sections_are_not_echoed_in_errors(exported: str) -> None:
    long_title = "x" * 600
    bad = re.sub(r"title: Council approves budget .*", f"title: {long_title}", exported, count=1)
    (error,) = _errors(bad)
    assert error == (
        f"line {_line(bad, long_title)}: articles[0].title: is 600 characters long (at most 500)"
    )
    bad = exported.replace("conditions:\n", "conditions: 3\nold_conditions:\n")
    errors = _errors(bad)
    assert f"line {_line(bad, 'conditions: 3')}: conditions: expected array, got int 3" in errors
    assert any(
        e.startswith(f"line {_line(bad, 'old_cond')}: old_conditions: unknown") for e in errors
    )
    root = _errors("- " + "y" * 500 + "\n")
    assert root == [f"line 1: expected object, got list ['{'y' * 55}..."]


def test_admin_dry_run_shows_a_hostile_title_as_text(lab: Lab) -> None:
    text = study_file_export(study=lab.study).replace(
        "title: Kreps replication", "title: <script>alert(1)</script>", 1
    )
    page = _upload(lab.researcher, text, team=lab.alpha.pk, slug="hostile")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script>alert(1)" not in page


def test_a_drafts_export_carries_its_current_design_hash() -> None:
    study = launched_study()
    Study.objects.filter(pk=study.pk).update(status=Study.Status.DRAFT)
    Question.objects.filter(study=study, key="credible").update(text="Is it credible?")
    study.refresh_from_db()
    text = study_file_export(study=study)
    assert study.design_hash not in text  # stale since the edit
    empty_database()

    result = study_file_import(text=text, team=None)

    assert result.same_design is True
    assert result.design_hash == study_design_hash(study=result.study)
