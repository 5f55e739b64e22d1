"""Benchmark: loading a study for analysis, and the long CSV export, at scale.

Creates studies of N participants x 10 rated articles (a yes/no "credible" question and one
rating scale, so 20 answers per participant) directly with bulk_create in a throwaway
SQLite file (never var/credence.sqlite3), then times

  (a) naive:  Response objects with select_related -> list of dicts -> DataFrame, the
              participants and their attention checks the same way, then the statistics
  (b) frames: analysis.frames.responses_frame + analysis.services.study_report
  (c) export: the streamed long CSV (rows/s, and peak Python memory under tracemalloc)

at each size, and prints a table and the (a)/(b) ratio. Usage:

    .venv/bin/python benchmarks/analysis_report.py --participants 20000 100000

With --database-url the given database is used instead (the studies created are deleted
at the end).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RATINGS = 10


def _setup(database_url: str | None) -> None:
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        folder = tempfile.mkdtemp(prefix="credence-bench-")
        os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studyplatform.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    import statsmodels.api  # noqa: F401  # import once here, not inside the first timing


def _create_study(participants: int, seed: int):  # type: ignore[no-untyped-def]
    import numpy as np

    from surveys.models import (
        Article,
        Condition,
        Participant,
        Question,
        Response,
        Study,
        Trial,
    )

    rng = np.random.default_rng(seed)
    slug = f"bench-{participants}-{uuid.uuid4().hex[:6]}"
    study = Study.objects.create(slug=slug, title=f"Benchmark {participants}", seed=seed)
    real = Condition.objects.create(study=study, name="real", label="Real", is_reference=True)
    generated = Condition.objects.create(study=study, name="gpt2-large", label="GPT-2 774M")
    pools: dict[int, list[int]] = {}
    for condition, origin in ((real, "real"), (generated, "generated")):
        ids = []
        for i in range(RATINGS):
            source = None
            if origin == "generated":
                source = Article.objects.create(
                    origin="real", title=f"{slug} source {i}", body=f"Source {slug} {i}."
                )
            article = Article.objects.create(
                origin=origin,
                title=f"{slug} {origin} {i}",
                body=f"Body of {slug} {origin} {i}.",
                source_article=source,
                model_name="gpt2-large" if source else "",
                url="https://en.wikinews.org/wiki/x" if not source else "",
                license="CC-BY-2.5",
            )
            ids.append(article.pk)
        condition.articles.set(ids)
        pools[condition.pk] = ids
    credible = Question.objects.create(
        study=study, key="credible", text="Credible?", kind=Question.Kind.BINARY, position=0
    )
    believable = Question.objects.create(
        study=study,
        key="believable",
        text="Believable?",
        kind=Question.Kind.LIKERT,
        scale_min=1,
        scale_max=5,
        position=1,
    )
    Question.objects.create(
        study=study,
        key="attention",
        text="Choose Blue",
        kind=Question.Kind.CHOICE,
        scope=Question.Scope.ATTENTION_CHECK,
        choices=["Red", "Blue"],
        expected_answer="Blue",
    )
    attention = study.questions.get(key="attention")
    now = datetime(2019, 8, 20, tzinfo=UTC)
    rate = {real.pk: 0.83, generated.pk: 0.72}  # the GPT-2 774M study's rates
    batch = 2000
    for start in range(0, participants, batch):
        size = min(batch, participants - start)
        people = Participant.objects.bulk_create(
            [
                Participant(
                    study=study,
                    condition=real if (start + i) % 2 == 0 else generated,
                    status=Participant.Status.COMPLETED,
                    panel_pid=f"P{start + i}",
                    seed=start + i,
                    consented_at=now,
                    completed_at=now + timedelta(minutes=10),
                    last_seen_at=now,
                    completion_code="BENCH",
                )
                for i in range(size)
            ]
        )
        trials = Trial.objects.bulk_create(
            [
                Trial(
                    participant=person,
                    article_id=pools[person.condition_id][k],
                    condition_id=person.condition_id,
                    position=k + 1,
                    first_shown_at=now,
                    answered_at=now + timedelta(seconds=30),
                )
                for person in people
                for k in range(RATINGS)
            ]
        )
        yes = rng.random(len(trials))
        points = rng.integers(1, 6, len(trials))
        responses = []
        for index, trial in enumerate(trials):
            person = people[index // RATINGS]
            is_yes = yes[index] < rate[person.condition_id]
            responses.append(
                Response(
                    participant=person,
                    trial=trial,
                    question=credible,
                    value="yes" if is_yes else "no",
                    value_numeric=1.0 if is_yes else 0.0,
                )
            )
            responses.append(
                Response(
                    participant=person,
                    trial=trial,
                    question=believable,
                    value=str(points[index]),
                    value_numeric=float(points[index]),
                )
            )
        responses += [
            Response(participant=person, question=attention, value="Blue") for person in people
        ]
        Response.objects.bulk_create(responses, batch_size=5000)
    return study


def _naive_report(study):  # type: ignore[no-untyped-def]
    """What one writes first: model instances, a dict per row, then the same statistics."""
    import pandas as pd

    from analysis import stats
    from surveys.models import Participant, Response

    rows = []
    for response in Response.objects.filter(
        participant__study=study, trial__isnull=False
    ).select_related("participant__condition", "trial__article", "question"):
        rows.append(
            {
                "response_id": response.pk,
                "participant_id": response.participant_id,
                "participant_token": str(response.participant.token),
                "condition": response.participant.condition.name,
                "is_test": response.participant.is_test,
                "article_id": response.trial.article_id,
                "article_origin": response.trial.article.origin,
                "trial_position": response.trial.position,
                "question_key": response.question.key,
                "question_kind": response.question.kind,
                "value": response.value,
                "value_numeric": response.value_numeric,
                "first_shown_at": response.trial.first_shown_at,
                "answered_at": response.trial.answered_at,
            }
        )
    frame = pd.DataFrame(rows)
    passed = {}
    for person in Participant.objects.filter(study=study).prefetch_related("responses__question"):
        checks = [r for r in person.responses.all() if r.question.scope == "attention"]
        passed[person.pk] = (
            not person.is_test
            and person.status == "completed"
            and all(
                r.value.strip().lower() == r.question.expected_answer.strip().lower()
                for r in checks
            )
        )
    frame = frame.loc[frame["participant_id"].map(passed)]
    binary = frame.loc[frame["question_key"] == "credible"]
    stats.proportions_by_condition(binary)
    comparisons = stats.compare_to_reference(binary, "real")
    stats.logistic_regression(binary, "real")
    stats.likert_means(frame.loc[frame["question_kind"] == "likert"])
    return comparisons


def _fast_report(study):  # type: ignore[no-untyped-def]
    from analysis.services import study_report

    return study_report(study=study).comparisons


def _export(study) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    from analysis.services import responses_csv_chunks

    lines = size = 0
    for chunk in responses_csv_chunks(study=study):
        lines += chunk.count("\n")
        size += len(chunk)
    return lines - 1, size


def _timed(function, *args):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = function(*args)
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--participants", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument(
        "--naive-max",
        type=int,
        default=20000,
        help="Skip the naive loader above this many participants (it is slow).",
    )
    parser.add_argument("--database-url", default=None, help="Use this database instead.")
    args = parser.parse_args()
    _setup(args.database_url)

    header = (
        f"{'participants':>12} {'rows':>9} {'naive s':>8} {'frames s':>9} {'ratio':>6} "
        f"{'export s':>9} {'rows/s':>9} {'CSV MB':>7} {'export peak MB':>15}"
    )
    lines = [header]
    created = []
    for n in args.participants:
        seconds, study = _timed(_create_study, n, n)
        created.append(study)
        answers = n * RATINGS * 2
        print(f"created {n} participants ({answers} answers) in {seconds:.1f} s", flush=True)
        fast_s, fast = _timed(_fast_report, study)
        naive_s = float("nan")
        if n <= args.naive_max:
            naive_s, naive = _timed(_naive_report, study)
            # Same numbers either way, or the comparison means nothing.
            assert abs(float(naive["z"].iloc[0]) - float(fast["z"].iloc[0])) < 1e-9
        export_s, (rows, size) = _timed(_export, study)
        tracemalloc.start()
        _export(study)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        line = (
            f"{n:>12} {rows:>9} {naive_s:>8.2f} {fast_s:>9.2f} {naive_s / fast_s:>6.1f} "
            f"{export_s:>9.2f} {rows / export_s:>9.0f} {size / 1e6:>7.1f} {peak / 1e6:>15.1f}"
        )
        lines.append(line)
        # Each size as soon as it is measured, so a long run that is stopped still reports.
        print(header + "\n" + line if len(lines) == 2 else line, flush=True)

    print("\n" + "\n".join(lines))
    print(
        "\nratio = naive / frames (report from ORM objects vs responses_frame + study_report);"
        "\nexport peak = tracemalloc peak of Python allocations while streaming the long CSV."
    )
    if args.database_url:
        from surveys.models import Participant

        for study in created:
            Participant.objects.filter(study=study).delete()
            study.delete()


if __name__ == "__main__":
    main()
