"""The wide export streamed a piece at a time: its exact text on a small study checked by
hand, its pieces, and memory that stays flat as the study grows (long CSV too)."""

from __future__ import annotations

import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from django.core.management import CommandError

from analysis import exports
from analysis.frames import RESPONSE_COLUMNS, RESPONSE_FIELDS, responses_chunks
from analysis.frames.columns import raw_fields
from analysis.frames.responses import _typed_responses
from analysis.services import responses_csv_chunks
from surveys.models import Article, Condition, Participant, Response, Study, Trial
from tests.analysis.conftest import ParticipantFactory, ResponseFactory, TrialFactory
from tests.analysis.test_commands import run
from tests.conftest import analyze_tables

pytestmark = pytest.mark.django_db

T0 = datetime(2019, 8, 20, 12, 0, tzinfo=UTC)

# Written out by hand from the participations built in _small_study: {pN} and {aN} are
# database ids, filled in by the test. Two article slots (articles_per_participant = 2);
# the test session is left out; the in-progress participant answered one question of
# one article, so the rest of their slots are empty. No answer ran JavaScript (the
# trials carry no copy counts): javascript is False, or empty before any answer.
EXPECTED_WIDE = """\
participant_id,participant_token,panel_pid,condition,status,is_test,analysed,\
exclusion_reason,consented_at,completed_at,checks_answered,checks_failed,\
duplicate_browser,network_burst,honeypot_filled,article_copies,answer_pastes,javascript,\
article_id_1,condition_1,article_origin_1,shown_at_1,answered_at_1,\
q_credible_1,q_believable_1,q_accurate_1,q_clear_1,\
article_id_2,condition_2,article_origin_2,shown_at_2,answered_at_2,\
q_credible_2,q_believable_2,q_accurate_2,q_clear_2
{p1},00000000-0000-4000-8000-000000000001,ANNA,real,completed,False,True,,\
2019-08-20T12:00:00.000000Z,2019-08-20T12:10:00.000000Z,1,0,False,False,False,,,False,\
{a1},real,real,2019-08-20T12:01:00.000000Z,2019-08-20T12:02:00.000000Z,yes,4,3,2,\
{a2},real,real,2019-08-20T12:03:00.000000Z,2019-08-20T12:04:30.000000Z,no,1,2,4
{p2},00000000-0000-4000-8000-000000000002,BORIS,generated,in_progress,False,False,\
incomplete,2019-08-20T12:00:00.000000Z,,0,0,False,False,False,,,,\
{a3},generated,generated,2019-08-20T12:01:00.000000Z,,yes,,,,\
,,,,,,,,
{p4},00000000-0000-4000-8000-000000000004,DORA,generated,completed,False,False,\
attention,2019-08-20T12:00:00.000000Z,2019-08-20T12:10:00.000000Z,1,1,False,False,False,,,False,\
{a4},generated,generated,2019-08-20T12:01:00.000000Z,2019-08-20T12:02:00.000000Z,\
"no, surely not",2,2,2,\
{a3},generated,generated,2019-08-20T12:03:00.000000Z,2019-08-20T12:04:30.000000Z,yes,3,3,3
"""


def _participant(study: Study, condition: str, number: int, pid: str, **kwargs: object):  # type: ignore[no-untyped-def]
    return ParticipantFactory.create(
        condition=Condition.objects.get(study=study, name=condition),
        token=uuid.UUID(f"00000000-0000-4000-8000-{number:012d}"),
        panel_pid=pid,
        **{"consented_at": T0, "completed_at": T0 + timedelta(minutes=10), **kwargs},
    )


def _rate(
    person: Participant,
    article: Article,
    position: int,
    answers: dict[str, str],
    *,
    answered: bool = True,
) -> None:
    shown = T0 + timedelta(minutes=2 * position - 1)
    trial = TrialFactory.create(
        participant=person,
        article=article,
        position=position,
        first_shown_at=shown,
        answered_at=shown + timedelta(seconds=60 + 30 * (position - 1)) if answered else None,
    )
    questions = {question.key: question for question in person.study.questions.all()}
    for key, value in answers.items():
        ResponseFactory.create(
            participant=person, trial=trial, question=questions[key], value=value
        )


def _small_study(study: Study) -> dict[str, int]:
    """Four participations (one of them a test session) over two article slots; returns
    the ids the expected text refers to."""
    Study.objects.filter(pk=study.pk).update(articles_per_participant=2)
    study.refresh_from_db()
    real = list(Article.objects.filter(conditions__study=study, origin="real").order_by("pk"))
    generated = list(
        Article.objects.filter(conditions__study=study, origin="generated").order_by("pk")
    )
    attention = study.questions.get(key="attention")
    kreps = ["credible", "believable", "accurate", "clear"]

    anna = _participant(study, "real", 1, "ANNA")
    _rate(anna, real[0], 1, dict(zip(kreps, ["yes", "4", "3", "2"], strict=True)))
    _rate(anna, real[1], 2, dict(zip(kreps, ["no", "1", "2", "4"], strict=True)))
    ResponseFactory.create(participant=anna, question=attention, value="Blue")

    boris = _participant(
        study, "generated", 2, "BORIS", status=Participant.Status.IN_PROGRESS, completed_at=None
    )
    _rate(boris, generated[0], 1, {"credible": "yes"}, answered=False)

    carl = _participant(study, "real", 3, "CARL", is_test=True)
    _rate(carl, real[2], 1, dict(zip(kreps, ["yes", "4", "4", "4"], strict=True)))

    dora = _participant(study, "generated", 4, "DORA")
    # A free-form answer with a comma: the CSV quotes it.
    _rate(dora, generated[1], 1, dict(zip(kreps, ["no, surely not", "2", "2", "2"], strict=True)))
    _rate(dora, generated[0], 2, dict(zip(kreps, ["yes", "3", "3", "3"], strict=True)))
    ResponseFactory.create(participant=dora, question=attention, value="Red")
    return {
        "p1": anna.pk,
        "p2": boris.pk,
        "p3": carl.pk,
        "p4": dora.pk,
        "a1": real[0].pk,
        "a2": real[1].pk,
        "a3": generated[0].pk,
        "a4": generated[1].pk,
    }


def test_wide_csv_matches_the_hand_checked_text(live_study):
    ids = _small_study(live_study)
    assert exports.wide_csv(study=live_study) == EXPECTED_WIDE.format(**ids)


def test_wide_csv_streams_one_piece_per_chunk_of_participants(live_study):
    ids = _small_study(live_study)
    pieces = list(exports.wide_csv_chunks(study=live_study, chunk_size=2))
    # The header, then ANNA and BORIS, then DORA (CARL, a test session, is skipped).
    assert len(pieces) == 3
    assert pieces[0].count("\n") == 1
    assert [piece.count("\n") for piece in pieces[1:]] == [2, 1]
    assert "".join(pieces) == EXPECTED_WIDE.format(**ids)


def test_wide_csv_with_test_sessions_adds_them_in_id_order(live_study):
    ids = _small_study(live_study)
    rows = exports.wide_csv(study=live_study, include_test=True).splitlines()[1:]
    assert [int(row.split(",")[0]) for row in rows] == [ids[p] for p in ("p1", "p2", "p3", "p4")]
    carl = rows[2].split(",")
    assert carl[2:8] == ["CARL", "real", "completed", "True", "False", "test"]


def test_wide_command_writes_the_streamed_text_to_a_file(live_study, tmp_path):
    ids = _small_study(live_study)
    target = tmp_path / "wide.csv"
    _, err = run("export_responses", live_study.slug, "--format", "wide", "-o", str(target))
    assert target.read_text(encoding="utf-8") == EXPECTED_WIDE.format(**ids)
    assert (tmp_path / "wide.csv.ATTRIBUTION.txt").exists()
    assert "wide.csv" in err


def test_wide_csv_of_a_study_without_participants_is_its_header(live_study):
    expected = ",".join(exports.WIDE_PARTICIPANT_COLUMNS) + "\n"
    assert exports.wide_csv(study=live_study) == expected
    assert list(exports.wide_csv_chunks(study=live_study)) == [expected]


def test_wide_csv_of_an_unknown_study_is_refused_before_writing(live_study, tmp_path):
    target = tmp_path / "wide.csv"
    with pytest.raises(CommandError, match="nope"):
        run("export_responses", "nope", "--format", "wide", "-o", str(target))
    assert not target.exists()


# ---------------------------------------------------------------------------------------
# Memory


def _add_participants(study: Study, count: int, start: int) -> None:
    """``count`` completed participations, two rated articles each (credible and
    believable answered), bulk-created: thousands in about a second."""
    conditions = list(study.conditions.order_by("name"))
    pools = {c.pk: list(c.articles.order_by("pk").values_list("pk", flat=True)) for c in conditions}
    credible = study.questions.get(key="credible")
    believable = study.questions.get(key="believable")
    attention = study.questions.get(key="attention")
    people = Participant.objects.bulk_create(
        [
            Participant(
                study=study,
                condition=conditions[i % 2],
                status=Participant.Status.COMPLETED,
                panel_pid=f"SCALE{start + i}",
                seed=start + i,
                consented_at=T0,
                completed_at=T0 + timedelta(minutes=5),
                last_seen_at=T0,
            )
            for i in range(count)
        ],
        batch_size=2000,
    )
    trials = Trial.objects.bulk_create(
        [
            Trial(
                participant=person,
                article_id=pools[person.condition_id][k],
                condition_id=person.condition_id,
                position=k + 1,
                first_shown_at=T0,
                answered_at=T0 + timedelta(seconds=40),
            )
            for person in people
            for k in range(2)
        ],
        batch_size=2000,
    )
    answers = [
        Response(participant_id=trial.participant_id, trial=trial, question=question, value=value)
        for index, trial in enumerate(trials)
        for question, value in (
            (credible, "yes" if index % 3 else "no"),
            (believable, str(1 + index % 4)),
        )
    ]
    answers += [Response(participant=person, question=attention, value="Blue") for person in people]
    Response.objects.bulk_create(answers, batch_size=5000)
    # As autovacuum would after a bulk import: the export is then planned on these rows.
    analyze_tables()


def _peak_while_consuming(chunks: Callable[[], Iterator[str]]) -> tuple[int, int]:
    """Lines produced and the peak of Python allocations while producing them, the
    pieces thrown away as they come (as a response or a file writer does)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        lines = sum(chunk.count("\n") for chunk in chunks())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return lines, peak


def test_export_memory_stays_flat_as_the_study_grows(live_study):
    study = live_study

    def wide() -> Iterator[str]:
        return exports.wide_csv_chunks(study=study, chunk_size=250)

    def long() -> Iterator[str]:
        return responses_csv_chunks(study=study, chunk_size=1000)

    # Exported once untraced on a few participants first, so caches filled on first use
    # (pandas, Django's SQL compiler) are not charged to the small size.
    _add_participants(study, 300, start=0)
    for export in (wide, long):
        sum(len(chunk) for chunk in export())
    _add_participants(study, 700, start=300)
    small_wide = _peak_while_consuming(wide)
    small_long = _peak_while_consuming(long)

    _add_participants(study, 3000, start=1000)
    large_wide = _peak_while_consuming(wide)
    large_long = _peak_while_consuming(long)

    assert (small_wide[0], large_wide[0]) == (1 + 1000, 1 + 4000)
    assert (small_long[0], large_long[0]) == (1 + 1000 * 4, 1 + 4000 * 4)
    # Four times the participants: an export that held the study would need about four
    # times the memory; streamed, only one chunk's working set is alive at a time.
    assert large_wide[1] < 1.3 * small_wide[1], (small_wide, large_wide)
    assert large_long[1] < 1.3 * small_long[1], (small_long, large_long)
    print(small_wide, large_wide, small_long, large_long)


def test_wide_pieces_hold_at_most_chunk_size_participants(live_study):
    _add_participants(live_study, 25, start=0)
    columns, pieces = exports.wide_frames(study=live_study, chunk_size=10)
    sizes = [len(piece) for piece in pieces]
    assert sizes == [10, 10, 5]
    assert columns == exports.wide_columns(
        positions=2, question_keys=["credible", "believable", "accurate", "clear"]
    )


# ---------------------------------------------------------------------------------------
# Query shape


def _joined_query_frame(study: Study, *, include_test: bool) -> pd.DataFrame:
    """The long frame as it was read before the export walked participants in pages:
    one query joining answers, participants, trials, articles, questions and conditions,
    sorted by the database. The reference the paged reads must reproduce exactly."""
    queryset = Response.objects.filter(participant__study=study, trial__isnull=False)
    if not include_test:
        queryset = queryset.filter(participant__is_test=False)
    rows = queryset.order_by(
        "participant_id", "trial__position", "question__position", "question_id"
    ).values_list(*raw_fields(RESPONSE_FIELDS))
    return _typed_responses(pd.DataFrame.from_records(list(rows), columns=RESPONSE_COLUMNS))


@pytest.mark.parametrize("include_test", [False, True])
def test_paged_reads_give_the_joined_query_rows_in_its_order(live_study, include_test):
    _small_study(live_study)
    _add_participants(live_study, 120, start=0)
    expected = _joined_query_frame(live_study, include_test=include_test)
    # Small chunks, so rows are carried from one page of participants to the next chunk.
    chunks = list(responses_chunks(study=live_study, include_test=include_test, chunk_size=7))
    assert {len(chunk) for chunk in chunks[:-1]} == {7}
    paged = pd.concat(chunks, ignore_index=True)
    assert len(expected) == 4 * 120 + (21 if include_test else 17)
    pd.testing.assert_frame_equal(
        paged.astype({"condition": object}), expected.astype({"condition": object})
    )
    # The bytes of the CSV follow from the frame: same frame, same text.
    text = "".join(responses_csv_chunks(study=live_study, include_test=include_test))
    assert text.count("\n") == 1 + len(expected)
