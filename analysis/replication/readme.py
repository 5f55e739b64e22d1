"""The README at the top of a replication archive: what each file is, the codebook, how to
re-run the headline analysis, and where the software versions are."""

from __future__ import annotations

from analysis import exports
from analysis.services import StudyReport
from surveys.models import Study

# What each file is, in the order of the archive.
FILE_DESCRIPTIONS = {
    "README.md": "This file: the contents, the codebook, how to re-run the analysis.",
    "analysis.json": (
        "Which yes/no question the credibility shares are about and which condition is the "
        "reference; read by recompute.py."
    ),
    "codebook.md": "The codebook on its own (also below).",
    "preregistration.md": (
        "The preregistration written from the frozen design, as it read at the launch."
    ),
    "created.txt": (
        "When the archive was built (UTC). The only file that differs between two builds "
        "of the same study."
    ),
    "design.json": (
        "The study design exactly as Credence hashes it (conditions, articles, questions, "
        "checks, texts, seed) with its SHA-256 design hash: frozen when the study was "
        "piloted or launched, or the current one for a draft (`design_hash_frozen`)."
    ),
    "exclusion_ledger.csv": (
        "How many participants each exclusion step removed and how many remained."
    ),
    "participants_wide.csv": (
        "One row per participant (test sessions left out): condition, status, whether "
        "analysed and why not, then per article position the article shown and every answer."
    ),
    "recompute.py": (
        "Standalone script (pandas, scipy and statsmodels only) that recomputes the "
        "headline table from the CSV files and checks it against the report's tables."
    ),
    "report.html": "The analysis report as Credence showed it: every table and figure, offline.",
    "requirements.txt": "The versions of numpy, pandas, scipy and statsmodels used for the report.",
    "responses_long.csv": (
        "One row per answer about an article (test sessions left out), with each article's "
        "URL and licence."
    ),
    "stimulus_manifest.csv": (
        "Every article the study used with its provenance: source, URL and licence of real "
        "ones; model, weights hash, prompt, decoding settings and seed of generated ones."
    ),
    "study.yaml": (
        "The study as a file (Credence's study file format; `manage.py study_import` "
        "recreates the study from it with the same design hash)."
    ),
    "table_comparisons.csv": (
        "Each condition against the reference, at full precision: difference with its "
        "Newcombe interval, z test, Holm-adjusted p, chi-square with and without Yates' "
        "correction, Fisher's exact p, Cohen's h, odds ratio."
    ),
    "table_likert.csv": "Mean rating per Likert question and condition, at full precision.",
    "table_power.csv": ("The power each comparison had and the sample size 80% power would need."),
    "table_proportions.csv": (
        "Share answering yes per condition with Wilson and Clopper-Pearson 95% intervals, "
        "at full precision."
    ),
    "table_regression.csv": (
        "Logistic regression of the yes/no answer on condition with participant-clustered "
        "standard errors, at full precision (empty when it could not be fitted)."
    ),
    "versions.txt": (
        "Credence's version (git commit when available) and every installed Python package "
        "with its exact version."
    ),
}


def readme_text(*, study: Study, report: StudyReport, files: list[str]) -> str:
    """The README.md of the study's archive; ``files`` are the other members."""
    names = ["README.md", *files]
    listing = [f"- `{name}`: {FILE_DESCRIPTIONS.get(name, '')}" for name in names]
    reference = report.reference or "none"
    question = report.binary_question or "none"
    lines = [
        f"# Replication archive: {study.title}",
        "",
        f"Study `{study.slug}`, built by Credence. Every file is at the top level; no file "
        "refers to a path outside the archive.",
        "",
        "## Files",
        "",
        *listing,
        "",
        "## Preregistration",
        "",
        *(
            [
                "`preregistration.md` is the preregistration Credence writes from the frozen "
                "design (the AsPredicted questions: hypothesis, conditions, analysis plan, "
                "exclusions, sample size), as it read at the launch."
            ]
            if "preregistration.md" in files
            else [
                "The study was never launched, so the archive holds no preregistration; "
                "`design.json` is the design as it was frozen for the pilot."
            ]
        ),
        "`design.json` is the design document Credence froze when the study was piloted or "
        "launched, and its SHA-256 hash. To check the hash, compute the SHA-256 of "
        "`json.dumps(document, sort_keys=True)` (Python's default separators, UTF-8) of its "
        "`document` field and compare it with `design_hash`; the preregistration names the "
        "same hash.",
        "",
        "## Personal data",
        "",
        "Panel ids (Prolific, MTurk) and participation tokens are not in this archive. The "
        "columns `panel_pid` and `participant_token` of the codebook below are replaced by "
        "`panel_pid_pseudonym` and `participant_token_pseudonym`: a keyed hash (HMAC-SHA256 "
        "under a key only the site holds, separate for this study), the same for the same "
        "person within this archive, and matched with nothing outside it without that key. "
        "`participant_id` is "
        "Credence's internal number of the participation.",
        "",
        "## Re-running the analysis",
        "",
        f'The headline table is about the yes/no question "{question}", each condition '
        f'against the reference condition "{reference}", over the participants marked '
        "`analysed` in `participants_wide.csv` (see `exclusion_ledger.csv`). To recompute "
        "it with nothing but pandas, scipy and statsmodels:",
        "",
        "```",
        "python3 -m venv venv",
        "venv/bin/pip install -r requirements.txt",
        "venv/bin/python recompute.py",
        "```",
        "",
        "It prints the credible shares with Wilson intervals, the tests against the reference "
        "(two-proportion z, chi-square with and without Yates' correction, Fisher's exact "
        "test, Holm-adjusted p) and the participant-clustered logistic regression, rounded as "
        "the report rounds them, then compares every number with `table_*.csv`. It exits with "
        "0 when they agree to the printed precision and 1 (listing each difference) when not.",
        "",
        "## Versions",
        "",
        "`versions.txt` names the Credence version and every Python package installed when "
        "the archive was built; `requirements.txt` the four the script needs.",
        "",
        *_demoted(exports.codebook_markdown(study=study)),
    ]
    return "\n".join(lines).rstrip("\n") + "\n"


def _demoted(markdown: str) -> list[str]:
    """The lines of ``markdown`` with every heading one level lower (under this README's
    title)."""
    return [f"#{line}" if line.startswith("#") else line for line in markdown.splitlines()]
