"""The replication archive: its contents (flat names, README first, no personal ids), its
determinism, recompute.py agreeing with the report (in this interpreter, isolated, and in
a fresh virtual environment with only pandas, scipy and statsmodels), the command, and
the results-page download for the study's team only."""

from __future__ import annotations

import ast
import io
import json
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.test import Client
from django.urls import reverse

from analysis import presentation
from analysis.replication import ENTRY_DATE, TIMESTAMP_FILE, pseudonym, replication_archive_write
from analysis.services import MIXED_MODEL_MAX_RATINGS_OFFLINE, study_report
from surveys.models import Participant, Study, Team, TeamMembership
from surveys.simulation import simulate
from surveys.studyfile import study_file_export
from tests.analysis.conftest import make_participant, rating

pytestmark = pytest.mark.django_db

DISTINCT_PID = "QX7-DISTINCT-PANEL-4411"
# A hostile panel id: a formula, a comma and quotes, so the CSV quotes and escapes it.
HOSTILE_PID = '=cmd|"/c calc"!A1,ZZHOSTILE'
REPO = Path(__file__).resolve().parents[2]
RECOMPUTE = REPO / "analysis" / "replication" / "recompute.py"


@pytest.fixture
def simulated(live_study: Study) -> Study:
    """The live study with 40 simulated participants (real 80%, generated 40% credible,
    a few failing the attention check) and one with a distinctive panel id."""
    simulate(
        study=live_study,
        n=40,
        rates={"real": 0.8, "generated": 0.4},
        seed=11,
        fail_attention=0.1,
        progress=False,
    )
    person = make_participant(live_study, "real", [rating("yes")])
    Participant.objects.filter(pk=person.pk).update(panel_pid=DISTINCT_PID)
    hostile = make_participant(live_study, "generated", [rating("no")])
    Participant.objects.filter(pk=hostile.pk).update(panel_pid=HOSTILE_PID)
    return live_study


def _build(study: Study) -> bytes:
    buffer = io.BytesIO()
    replication_archive_write(study=study, target=buffer)
    return buffer.getvalue()


def _unpack(data: bytes, folder: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        archive.extractall(folder)
        return {name: archive.read(name) for name in archive.namelist()}


def test_archive_is_flat_with_the_readme_first_and_holds_every_part(simulated, tmp_path):
    with zipfile.ZipFile(io.BytesIO(_build(simulated))) as archive:
        infos = archive.infolist()
        names = [info.filename for info in infos]
        members = {name: archive.read(name).decode("utf-8") for name in names}
    assert names[0] == "README.md"
    assert names[1:] == sorted(names[1:])
    assert all("/" not in name and "\\" not in name and name.strip() == name for name in names)
    assert {info.date_time for info in infos} == {ENTRY_DATE}
    expected = {
        "analysis.json",
        "codebook.md",
        TIMESTAMP_FILE,
        "design.json",
        "exclusion_ledger.csv",
        "participants_wide.csv",
        "preregistration.md",
        "recompute.py",
        "report.html",
        "requirements.txt",
        "responses_long.csv",
        "stimulus_manifest.csv",
        "study.yaml",
        "table_comparisons.csv",
        "table_proportions.csv",
        "table_regression.csv",
        "versions.txt",
    }
    assert expected <= set(names)
    # No absolute path of the building machine in any file.
    for name, text in members.items():
        assert str(REPO) not in text, name
        assert str(tmp_path) not in text, name
    readme = members["README.md"]
    assert "`preregistration.md` is the preregistration Credence writes" in readme
    # The preregistration as it read at the launch: the frozen design's hash, and the data
    # collected by then (none: the simulated participants came after).
    preregistration = members["preregistration.md"]
    assert f"design hash `{simulated.design_hash}`" in preregistration
    assert "No. No participant had started at the launch." in preregistration
    assert "## Codebook" in readme
    assert "| value_numeric |" in readme
    assert all(f"`{name}`" in readme for name in expected)
    assert members["study.yaml"] == study_file_export(study=simulated)
    design = json.loads(members["design.json"])
    assert design["design_hash"] == simulated.design_hash != ""
    assert design["design_hash_frozen"] is True
    assert design["design_hash_of_document"] == simulated.design_hash
    assert members["recompute.py"] == RECOMPUTE.read_text(encoding="utf-8")
    versions = members["versions.txt"]
    assert re.search(r"^statsmodels==\S+$", versions, re.MULTILINE)
    assert re.search(r"^pandas==\S+$", versions, re.MULTILINE)
    assert versions.startswith("credence ")
    assert "generated at the time in created.txt" in members["report.html"]
    ledger = members["exclusion_ledger.csv"].splitlines()
    assert ledger[0] == "step,label,excluded,remaining"
    report = study_report(study=simulated)
    assert ledger[-1].endswith(f",{report.analysed}")


def test_archive_holds_no_panel_id_or_token_only_their_pseudonyms(simulated):
    data = _build(simulated)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        text = "\n".join(archive.read(name).decode("utf-8") for name in archive.namelist())
    people = list(Participant.objects.filter(study=simulated, is_test=False))
    assert {DISTINCT_PID, HOSTILE_PID} <= {p.panel_pid for p in people}
    assert "ZZHOSTILE" not in text
    assert "/c calc" not in text
    for person in people:
        assert person.panel_pid not in text
        assert str(person.token) not in text
        assert str(person.token).replace("-", "") not in text
    # The rows carry the keyed pseudonym instead, the same in both files.
    distinct = pseudonym(study=simulated, column="panel_pid", value=DISTINCT_PID)
    assert len(distinct) == 64
    assert text.count(distinct) >= 2
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        long_header = archive.read("responses_long.csv").decode().splitlines()[0].split(",")
        wide_header = archive.read("participants_wide.csv").decode().splitlines()[0].split(",")
    for header in (long_header, wide_header):
        assert "panel_pid" not in header
        assert "participant_token" not in header
        assert {"panel_pid_pseudonym", "participant_token_pseudonym"} <= set(header)
    # Keyed per study: another study's archive would give another pseudonym.
    other = Study(slug="another-study")
    assert pseudonym(study=other, column="panel_pid", value=DISTINCT_PID) != distinct


def test_archive_is_the_same_bytes_twice_apart_from_the_timestamp_file(simulated, monkeypatch):
    first = _build(simulated)
    # A later minute must not leak into anything but created.txt (the HTML report prints one).
    import django.utils.timezone as django_timezone

    later = django_timezone.now() + django_timezone.timedelta(days=3, minutes=7)
    monkeypatch.setattr(django_timezone, "now", lambda: later)
    second = _build(simulated)
    with zipfile.ZipFile(io.BytesIO(first)) as a, zipfile.ZipFile(io.BytesIO(second)) as b:
        assert a.namelist() == b.namelist()
        for name in a.namelist():
            if name == TIMESTAMP_FILE:
                assert a.read(name) != b.read(name)
                continue
            assert a.read(name) == b.read(name), name
            assert a.getinfo(name).date_time == b.getinfo(name).date_time == ENTRY_DATE


def _report_lines(study: Study) -> list[str]:
    """The numbers the report prints for the headline table, as the report formats them."""
    report = study_report(study=study, mixed_max_ratings=MIXED_MODEL_MAX_RATINGS_OFFLINE)
    wanted = []
    for p in presentation.proportion_rows(report):
        wanted.append(f"{p.condition}  n={p.n}  {p.share} {p.ci}")
    for c in presentation.comparison_rows(report):
        wanted.append(f"diff {c.difference} {c.ci}, z={c.z}, p={c.p} (Holm {c.p_holm})")
        wanted.append(
            f"chi2={c.chi2} (p={c.chi2_p}), Yates chi2={c.chi2_yates} (p={c.chi2_yates_p})"
        )
        wanted.append(f"Fisher p={c.fisher_p}, OR={c.odds_ratio} {c.or_ci}")
    for r in presentation.regression_rows(report):
        wanted.append(f"{r.term}  log-odds {r.log_odds}  se {r.se}  z={r.z}  p={r.p}")
        wanted.append(f"odds {r.odds_ratio} {r.ci}")
    assert len(wanted) == 2 + 3 + 4  # two conditions, one comparison, two terms
    return wanted


def _run_recompute(python: str, folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [python, "-I", str(folder / "recompute.py"), str(folder)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=folder,
        check=False,
    )


def test_recompute_in_isolation_agrees_with_the_report_and_loads_no_credence(simulated, tmp_path):
    _unpack(_build(simulated), tmp_path)
    result = _run_recompute(sys.executable, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for line in _report_lines(simulated):
        assert line in result.stdout
    assert "agree with the report" in result.stdout
    # Run again as a module, to see what it imported: nothing of Django or Credence.
    probe = (
        "import runpy, sys\n"
        f"module = runpy.run_path({str(tmp_path / 'recompute.py')!r}, run_name='probe')\n"
        f"code = module['main'](['recompute.py', {str(tmp_path)!r}])\n"
        "roots = {name.split('.')[0] for name in sys.modules}\n"
        "print('LOADED', sorted(roots & {'django', 'analysis', 'surveys', 'studyplatform',"
        " 'generation', 'rest_framework'}), code)\n"
    )
    loaded = subprocess.run(
        [sys.executable, "-I", "-c", probe], capture_output=True, text=True, timeout=300
    )
    assert "LOADED [] 0" in loaded.stdout, loaded.stdout + loaded.stderr


def test_recompute_agrees_when_each_participant_rated_several_articles(tmp_path):
    """Within subjects every participant rates both conditions, so the clustered errors
    differ from the model-based ones: the script must cluster as the report does."""
    from tests.surveys.builders import within_study

    study = within_study(stories=8, real_each=2, generated_each=2)
    simulate(study=study, n=16, rates={"real": 0.75, "generated": 0.35}, seed=5, progress=False)
    report = study_report(study=study)
    assert report.regression is not None
    assert report.regression.n_clusters < report.regression.n_obs
    _unpack(_build(study), tmp_path)
    result = _run_recompute(sys.executable, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    for line in _report_lines(study):
        assert line in result.stdout


def test_versions_name_the_package_version_when_there_is_no_git(monkeypatch):
    from analysis.replication import versions

    def no_git(*args: object, **kwargs: object) -> None:
        raise FileNotFoundError("git")

    monkeypatch.setattr(versions.subprocess, "run", no_git)
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    text = versions.versions_text()
    assert text.startswith(f"credence {project['version']} (no git commit available)\n")
    assert re.search(r"^scipy==\S+$", text, re.MULTILINE)


def test_recompute_imports_only_the_standard_library_pandas_scipy_and_statsmodels():
    tree = ast.parse(RECOMPUTE.read_text(encoding="utf-8"))
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            roots.add((node.module or "").split(".")[0])
    third_party = roots - set(sys.stdlib_module_names) - {"__future__"}
    assert third_party == {"numpy", "pandas", "scipy", "statsmodels"}


def test_recompute_exits_1_and_names_a_number_that_differs_from_the_report(simulated, tmp_path):
    _unpack(_build(simulated), tmp_path)
    table = tmp_path / "table_proportions.csv"
    lines = table.read_text().splitlines()
    header = lines[0].split(",")
    cells = lines[1].split(",")
    share = header.index("share")
    cells[share] = str(float(cells[share]) + 0.002)  # 0.2 points: visible at one decimal
    table.write_text("\n".join([lines[0], ",".join(cells), *lines[2:]]) + "\n")
    result = _run_recompute(sys.executable, tmp_path)
    assert result.returncode == 1
    assert "DIFFERENT from the report" in result.stdout
    assert f"proportions {cells[0]} share" in result.stdout


@pytest.mark.slow
@pytest.mark.timeout(1200)
def test_recompute_in_a_fresh_venv_with_only_the_three_libraries(simulated, tmp_path):
    pins = {}
    for line in (REPO / "requirements-lock.txt").read_text().splitlines():
        name, _, version = line.partition("==")
        if name.strip().lower() in {"numpy", "pandas", "scipy", "statsmodels"}:
            pins[name.strip().lower()] = f"{name.strip()}=={version.strip()}"
    assert len(pins) == 4
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", *sorted(pins.values())],
        capture_output=True,
        text=True,
        timeout=1000,
        check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    present = subprocess.run(
        [python, "-c", "import importlib.util as u; print(u.find_spec('django'))"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert present.stdout.strip() == "None"  # the fresh environment has no Django
    folder = tmp_path / "archive"
    _unpack(_build(simulated), folder)
    result = _run_recompute(python, folder)
    assert result.returncode == 0, result.stdout + result.stderr
    for line in _report_lines(simulated):
        assert line in result.stdout


def test_command_writes_the_archive_and_audits_it(simulated, tmp_path):
    target = tmp_path / "out.zip"
    before = LogEntry.objects.count()
    call_command("replication_package", simulated.slug, "-o", str(target))
    with zipfile.ZipFile(target) as archive:
        assert archive.namelist()[0] == "README.md"
    entry = LogEntry.objects.order_by("-pk").first()
    assert LogEntry.objects.count() == before + 1
    assert entry is not None
    assert entry.additional_data["what"] == "replication archive (replication_package)"
    assert not list(tmp_path.glob("*.part"))


def test_command_refuses_a_missing_folder_and_an_unknown_study(live_study, tmp_path):
    with pytest.raises(CommandError, match="does not exist"):
        call_command("replication_package", live_study.slug, "-o", str(tmp_path / "no" / "x.zip"))
    with pytest.raises(CommandError, match="No study"):
        call_command("replication_package", "no-such-study", "-o", str(tmp_path / "x.zip"))


def _member_of(study: Study, username: str) -> Client:
    team = study.team or Team.objects.create(name=f"{username} lab")
    if study.team is None:
        Study.objects.filter(pk=study.pk).update(team=team)
    user = User.objects.create_user(username, password="pw", is_staff=True)
    TeamMembership.objects.create(team=team, user=user, role="researcher")
    client = Client()
    client.force_login(user)
    return client


def test_results_page_links_the_archive_and_the_team_downloads_it(rated_study):
    client = _member_of(rated_study, "alice")
    url = reverse("analysis:replication", args=[rated_study.slug])
    page = client.get(reverse("analysis:results", args=[rated_study.slug]))
    assert page.status_code == 200
    assert url in page.content.decode()
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    assert f'filename="study-{rated_study.slug}.zip"' in response["Content-Disposition"]
    body = b"".join(response.streaming_content)
    with zipfile.ZipFile(io.BytesIO(body)) as archive:
        assert archive.namelist()[0] == "README.md"
    entry = LogEntry.objects.order_by("-pk").first()
    assert entry is not None
    assert entry.actor is not None
    assert entry.actor.username == "alice"
    assert entry.additional_data["what"] == "replication archive (results page)"


def test_archive_of_another_teams_study_is_404_and_not_audited(rated_study):
    _member_of(rated_study, "alice")
    outsider_team = Team.objects.create(name="Other lab")
    outsider = User.objects.create_user("mallory", password="pw", is_staff=True)
    TeamMembership.objects.create(team=outsider_team, user=outsider, role="researcher")
    client = Client()
    client.force_login(outsider)
    before = LogEntry.objects.filter(additional_data__event="export").count()
    response = client.get(reverse("analysis:replication", args=[rated_study.slug]))
    assert response.status_code == 404
    assert LogEntry.objects.filter(additional_data__event="export").count() == before


def test_archive_needs_a_signed_in_staff_user(client, rated_study):
    response = client.get(reverse("analysis:replication", args=[rated_study.slug]))
    assert response.status_code == 302
    assert "/login" in response["Location"]
