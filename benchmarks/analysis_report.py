"""Benchmark: the full report of a large study, and its exports, against a naive ORM loop.

Creates a study of N participants x 10 rated articles (a yes/no "credible" question and a
1-5 rating scale: 20 answers per participant, plus one attention check each) directly in
the database: participants and trials with bulk_create, the answers with one
INSERT ... SELECT per batch. By default in a throwaway SQLite file (never
var/credence.sqlite3); with --database-url in that database, deleting what it created at
the end. Then, at each size, each path in a forked child process so that its peak memory
is its own:

  frames: analysis.services.study_report (the loaders of analysis.frames, then every
          statistic of the report)
  naive:  Response objects with select_related -> list of dicts -> DataFrame, participants
          and their attention checks the same way, then the core statistics (rates,
          comparisons, logistic regression, Likert means): less work than the report
  long:   the streamed long CSV (analysis.services.responses_csv_chunks)
  wide:   the streamed wide CSV (analysis.exports.wide_csv_chunks)

"peak MB" is the child's peak resident set (VmHWM, reset when it starts) minus its resident
set when it starts: everything the path allocated, C and Python alike (Linux only).
Usage:

    .venv/bin/python benchmarks/analysis_report.py --participants 20000 100000
    scripts/with-postgres.sh sh -c \\
        '.venv/bin/python benchmarks/analysis_report.py --database-url "$DATABASE_URL"'
"""

from __future__ import annotations

import argparse
import os
import pickle
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

RATINGS = 10
RATES = {"real": 0.83, "gpt2-large": 0.72}  # the GPT-2 774M study's credibility rates


def _setup(database_url: str | None) -> None:
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        folder = tempfile.mkdtemp(prefix="credence-bench-")
        os.environ["DATABASE_URL"] = f"sqlite:///{folder}/bench.sqlite3"
    # A development tool: debug mode's settings and key, as it had before debug mode
    # became opt-in (studyplatform.settings_dev).
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "studyplatform.settings_dev")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    # Imported once here, not inside the first timing; the forked children inherit them.
    import statsmodels.api  # noqa: F401

    import analysis.exports
    import analysis.services  # noqa: F401


def _create_study(participants: int, seed: int):  # type: ignore[no-untyped-def]
    from django.db import connection, transaction

    from surveys.models import (
        Article,
        Condition,
        Participant,
        Question,
        Response,
        Study,
        Trial,
    )

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
    attention = Question.objects.create(
        study=study,
        key="attention",
        text="Choose Blue",
        kind=Question.Kind.CHOICE,
        scope=Question.Scope.ATTENTION_CHECK,
        choices=["Red", "Blue"],
        expected_answer="Blue",
    )
    now = datetime(2019, 8, 20, tzinfo=UTC)
    response = Response._meta.db_table
    trial = Trial._meta.db_table
    participant = Participant._meta.db_table
    # The answers are derived from the trials inside the database: no Python object per
    # answer. "Random" draws are a permutation of the trial id modulo 1000 (7919 is prime
    # to 1000), so each condition's credible share is its rate to within 0.1%.
    answers_sql = f"""
        INSERT INTO {response}
            (participant_id, trial_id, question_id, value, value_numeric, created_at, updated_at)
        SELECT t.participant_id, t.id, %s,
               CASE WHEN (t.id * 7919) %% 1000 < (CASE WHEN t.condition_id = %s
                    THEN %s ELSE %s END) THEN 'yes' ELSE 'no' END,
               CASE WHEN (t.id * 7919) %% 1000 < (CASE WHEN t.condition_id = %s
                    THEN %s ELSE %s END) THEN 1.0 ELSE 0.0 END,
               t.answered_at, t.answered_at
        FROM {trial} t WHERE t.participant_id BETWEEN %s AND %s
        UNION ALL
        SELECT t.participant_id, t.id, %s,
               CAST(1 + (t.id * 31) %% 5 AS VARCHAR(1)), 1 + (t.id * 31) %% 5,
               t.answered_at, t.answered_at
        FROM {trial} t WHERE t.participant_id BETWEEN %s AND %s
        UNION ALL
        SELECT p.id, NULL, %s, 'Blue', NULL, p.consented_at, p.consented_at
        FROM {participant} p WHERE p.id BETWEEN %s AND %s
    """
    thresholds = [real.pk, int(RATES["real"] * 1000), int(RATES["gpt2-large"] * 1000)]
    # Trials too: each participant x each slot of their condition's pool, joined in SQL.
    pool_rows = " UNION ALL ".join(
        f"SELECT {condition_id} AS condition_id, {k + 1} AS position, {article_id} AS article_id"
        for condition_id, ids in pools.items()
        for k, article_id in enumerate(ids)
    )
    trials_sql = f"""
        INSERT INTO {trial}
            (participant_id, article_id, condition_id, position, first_shown_at, answered_at)
        SELECT p.id, pool.article_id, p.condition_id, pool.position, %s, %s
        FROM {participant} p JOIN ({pool_rows}) pool ON pool.condition_id = p.condition_id
        WHERE p.id BETWEEN %s AND %s
    """
    shown = connection.ops.adapt_datetimefield_value(now)
    answered = connection.ops.adapt_datetimefield_value(now + timedelta(seconds=30))
    batch = 5000
    for start in range(0, participants, batch):
        size = min(batch, participants - start)
        with transaction.atomic():
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
            first, last = people[0].pk, people[-1].pk
            with connection.cursor() as cursor:
                cursor.execute(trials_sql, [shown, answered, first, last])
                cursor.execute(
                    answers_sql,
                    [
                        *(credible.pk, *thresholds, *thresholds, first, last),
                        *(believable.pk, first, last, attention.pk, first, last),
                    ],
                )
    return study


def _naive_report(study):  # type: ignore[no-untyped-def]
    """What one writes first: model instances, a dict per row, then the same statistics."""
    import pandas as pd
    from django.db.models import Prefetch

    from analysis import stats
    from surveys.models import Participant, Response

    rows = []
    # .iterator(): without it every row's six model instances stay alive together (about
    # 7 KB per answer, 14 GB at 100,000 participants), more than a shared machine spares.
    for response in (
        Response.objects.filter(participant__study=study, trial__isnull=False)
        .select_related("participant__condition", "trial__article", "question")
        .iterator(chunk_size=2000)
    ):
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
    # Only the attention checks are prefetched, for the same reason.
    checks_only = Prefetch(
        "responses",
        queryset=Response.objects.filter(trial__isnull=True).select_related("question"),
    )
    for person in Participant.objects.filter(study=study).prefetch_related(checks_only):
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
    return float(comparisons["z"].iloc[0])


def _frames_report(study):  # type: ignore[no-untyped-def]
    from analysis.services import study_report

    return float(study_report(study=study).comparisons["z"].iloc[0])


def _consume(chunks) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Data rows and characters of a streamed CSV, each piece dropped once counted."""
    lines = size = 0
    for chunk in chunks:
        lines += chunk.count("\n")
        size += len(chunk)
    return lines - 1, size


def _long_csv(study) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    from analysis.services import responses_csv_chunks

    return _consume(responses_csv_chunks(study=study))


def _wide_csv(study) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    from analysis.exports import wide_csv_chunks

    return _consume(wide_csv_chunks(study=study))


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"No {field} in /proc/self/status (Linux only).")


def _in_child(function: Callable[[Any], Any], study: Any) -> tuple[float, float, Any]:
    """``function(study)`` in a forked child: (seconds, peak resident growth in MB, result).
    A child starts from the parent's memory and gives all of it back, so the sizes and
    paths measured one after the other do not inherit each other's garbage."""
    from django.db import connections

    # The child opens its own connection; a shared socket or file handle would break both.
    connections.close_all()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        os.close(read)
        try:
            Path("/proc/self/clear_refs").write_text("5")  # reset VmHWM to the current RSS
            base = _status_kb("VmRSS")
            start = time.perf_counter()
            result = function(study)
            seconds = time.perf_counter() - start
            payload = pickle.dumps((seconds, (_status_kb("VmHWM") - base) / 1024, result))
        except BaseException as error:  # reported by the parent
            payload = pickle.dumps(RuntimeError(f"{function.__name__}: {error!r}"))
        with os.fdopen(write, "wb") as pipe:
            pipe.write(payload)
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        answer = pickle.loads(pipe.read())
    os.waitpid(pid, 0)
    if isinstance(answer, Exception):
        raise answer
    return answer  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--participants", type=int, nargs="+", default=[2000, 10000])
    parser.add_argument(
        "--naive-max",
        type=int,
        default=None,
        help="Skip the naive loader above this many participants (it is slow). Default: "
        "run it at every size.",
    )
    parser.add_argument("--database-url", default=None, help="Use this database instead.")
    args = parser.parse_args()
    _setup(args.database_url)
    from django.db import connection

    print(f"database: {connection.vendor}", flush=True)
    header = (
        f"{'participants':>12} {'answers':>9} {'frames s':>9} {'frames MB':>10} "
        f"{'naive s':>8} {'naive MB':>9} {'ratio s':>8} "
        f"{'long rows/s':>12} {'long MB':>8} {'wide rows/s':>12} {'wide MB':>8}"
    )
    lines = [header]
    created = []
    for n in args.participants:
        seconds, study = _timed_create(n)
        created.append(study)
        print(
            f"created {n} participants ({n * RATINGS * 2} answers) in {seconds:.1f} s", flush=True
        )
        frames_s, frames_mb, fast_z = _in_child(_frames_report, study)
        print(f"  frames report {frames_s:.1f} s, {frames_mb:.0f} MB", flush=True)
        naive_s = naive_mb = float("nan")
        if args.naive_max is None or n <= args.naive_max:
            naive_s, naive_mb, naive_z = _in_child(_naive_report, study)
            print(f"  naive report {naive_s:.1f} s, {naive_mb:.0f} MB", flush=True)
            # Same numbers either way, or the comparison means nothing.
            assert abs(naive_z - fast_z) < 1e-9, (naive_z, fast_z)
        long_s, long_mb, (long_rows, _) = _in_child(_long_csv, study)
        wide_s, wide_mb, (wide_rows, _) = _in_child(_wide_csv, study)
        assert (long_rows, wide_rows) == (n * RATINGS * 2, n), (long_rows, wide_rows)
        line = (
            f"{n:>12} {long_rows:>9} {frames_s:>9.2f} {frames_mb:>10.0f} "
            f"{naive_s:>8.2f} {naive_mb:>9.0f} {naive_s / frames_s:>8.1f} "
            f"{long_rows / long_s:>12.0f} {long_mb:>8.0f} {wide_rows / wide_s:>12.0f} "
            f"{wide_mb:>8.0f}"
        )
        lines.append(line)
        # Each size as soon as it is measured, so a long run that is stopped still reports.
        print(header + "\n" + line if len(lines) == 2 else line, flush=True)

    print("\n" + "\n".join(lines))
    print(
        f"\ndatabase: {connection.vendor}; answers = long CSV rows; each participant also has "
        "one attention check;"
        "\nratio s = naive s / frames s (report from ORM objects vs analysis.frames + "
        "study_report);"
        "\nMB = peak resident memory growth of the forked child that ran the path."
    )
    if args.database_url:
        for study in created:
            _delete_study(study)


def _delete_study(study) -> None:  # type: ignore[no-untyped-def]
    """Remove a benchmark study from a database that outlives the run. The answers,
    trials and participants go in three statements: Django's cascade would first load
    millions of rows to send signals nobody listens to."""
    from django.db import connection, transaction

    from surveys.models import Participant, Response, Trial

    people = f"SELECT id FROM {Participant._meta.db_table} WHERE study_id = %s"
    with transaction.atomic(), connection.cursor() as cursor:
        for model in (Response, Trial, Participant):
            column = "id" if model is Participant else "participant_id"
            cursor.execute(
                f"DELETE FROM {model._meta.db_table} WHERE {column} IN ({people})", [study.pk]
            )
        study.delete()


def _timed_create(n: int):  # type: ignore[no-untyped-def]
    from django.db import connection

    start = time.perf_counter()
    study = _create_study(n, n)
    if connection.vendor == "postgresql":
        # Planner statistics, as a database that has been live for a while has them: the
        # timings should not depend on when autovacuum happens to get to the new rows.
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    return time.perf_counter() - start, study


if __name__ == "__main__":
    main()
