"""Ready-made question sets (instruments) that a researcher adds to a study in one click.

``kreps`` follows the credibility measures of Kreps, McCain & Brundage (2020), "All the
News That's Fit to Fabricate: AI-Generated Text as a Tool of Media Misinformation"
(Journal of Experimental Political Science), the study behind the GPT-2 release's
credibility figures: a yes/no credibility judgement plus believability, accuracy and
clarity on four-point scales. The item texts here are neutral wordings of those measures;
check them against the paper's appendix before claiming an exact replication.

``detection`` asks, about each article, whether a person or a machine wrote it, on a
five-point scale with an explicit "I don't know" (as in Brown et al. (2020), "Language
Models are Few-Shot Learners", sec. 3.9.4, the GPT-3 news study). ``detection_4`` is the
four-point scale of Clark et al. (2021), "All That's 'Human' Is Not Gold", ACL:
definitely / possibly human-written, possibly / definitely machine-generated, with no
neutral point. Every question analysis scores carries its definition in
``Question.scoring`` (schema: studyplatform.measures.scoring), set here: the Kreps items
as credibility items, and each detection option listed as a "human", "machine" or
"neutral" ("I don't know", undecided) judgement.
``attention`` is an instructed-response item asked among the articles (after the
first); ``comprehension`` asks, after the instructions, two questions about the default
instructions text (edit them if the instructions change) that participants must answer
right to go on.
``demographics`` is asked once per participant, after the articles: age bracket, gender,
party identification, 7-point ideology, prior exposure to the stories and whether they
looked anything up, plus where they get their news (tick all that apply) and general
trust in news media (0-100 slider). Every item offers a way not to answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Max

from studyplatform.measures.scoring import (
    CREDIBILITY_ITEM,
    CREDIBLE,
    DETECTION,
    detection_definition,
)
from surveys.models import Question, Study
from surveys.services import study_assert_editable


@dataclass(frozen=True)
class QuestionSpec:
    key: str
    text: str
    kind: str
    scope: str = Question.Scope.PER_ARTICLE
    scale_min: int | None = None
    scale_max: int | None = None
    min_label: str = ""
    max_label: str = ""
    choices: tuple[str, ...] = ()
    expected_answer: str = ""
    required: bool = True
    after_article: int | None = None
    scoring: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Instrument:
    label: str
    questions: tuple[QuestionSpec, ...] = field(default_factory=tuple)


def _four_point(key: str, adjective: str) -> QuestionSpec:
    return QuestionSpec(
        key=key,
        text=f"How {adjective} is this article?",
        kind=Question.Kind.LIKERT,
        scale_min=1,
        scale_max=4,
        min_label=f"Not at all {adjective}",
        max_label=f"Very {adjective}",
        scoring={"role": CREDIBILITY_ITEM},
    )


_AGREEMENT = (
    "Strongly disagree",
    "Somewhat disagree",
    "Neither agree nor disagree",
    "Somewhat agree",
    "Strongly agree",
)

PREFER_NOT = "Prefer not to say"

DETECTION_OPTIONS = (
    "Very likely written by a human",
    "Somewhat likely written by a human",
    "Equally likely written by a human or a machine",
    "Somewhat likely written by a machine",
    "Very likely written by a machine",
    "I don't know",
)

# Listed by hand, not by the word each names: "Equally likely written by a human or a
# machine" is the scale's neutral point (left out of the accuracy ratio, as "I don't
# know"), though it names "machine". Before definitions were stored, analysis mapped by
# words and counted it as a machine judgement, a bug: migration 0007 and the word rule
# now read it as neutral too.
DETECTION_SCORING: dict[str, Any] = {
    "role": DETECTION,
    "human": list(DETECTION_OPTIONS[:2]),
    "machine": list(DETECTION_OPTIONS[3:5]),
    "neutral": [DETECTION_OPTIONS[2], DETECTION_OPTIONS[5]],
}

# Clark et al. (2021): the four choices their evaluators had.
DETECTION_4_OPTIONS = (
    "Definitely human-written",
    "Possibly human-written",
    "Possibly machine-generated",
    "Definitely machine-generated",
)

# Keys of the instruments' per-article "human or machine?" questions (and "detection",
# the conventional key of one written by hand). Analysis no longer looks questions up by
# key: it reads ``Question.scoring``; migration 0007 filled it for these keys.
DETECTION_KEYS = ("detection", "written_by", "written_by_4")

_ABOUT = Question.Scope.PARTICIPANT

DEMOGRAPHICS: tuple[QuestionSpec, ...] = (
    QuestionSpec(
        key="age_bracket",
        text="How old are you?",
        kind=Question.Kind.CHOICE,
        scope=_ABOUT,
        choices=("18-24", "25-34", "35-44", "45-54", "55-64", "65 or older", PREFER_NOT),
    ),
    QuestionSpec(
        key="gender",
        text="What is your gender?",
        kind=Question.Kind.CHOICE,
        scope=_ABOUT,
        choices=("Woman", "Man", "Non-binary or another gender", PREFER_NOT),
    ),
    QuestionSpec(
        key="party_id",
        text="Generally speaking, do you think of yourself as a ...",
        kind=Question.Kind.CHOICE,
        scope=_ABOUT,
        choices=("Democrat", "Republican", "Independent", "Something else", PREFER_NOT),
    ),
    QuestionSpec(
        key="ideology",
        text="Where would you place yourself on this scale of political views?",
        kind=Question.Kind.LIKERT,
        scope=_ABOUT,
        scale_min=1,
        scale_max=7,
        min_label="Very liberal",
        max_label="Very conservative",
        required=False,
    ),
    QuestionSpec(
        key="seen_before",
        text="Had you seen or heard about any of the stories in these articles before today?",
        kind=Question.Kind.CHOICE,
        scope=_ABOUT,
        choices=("No", "Yes, one or more of them", "Not sure"),
    ),
    QuestionSpec(
        key="looked_up",
        text="While taking part, did you look up anything about these stories elsewhere "
        "(for example with a search engine)? Your answer does not affect your payment.",
        kind=Question.Kind.BINARY,
        scope=_ABOUT,
    ),
    QuestionSpec(
        key="news_sources",
        text="Where do you usually get your news?",
        kind=Question.Kind.MULTI_CHOICE,
        scope=_ABOUT,
        choices=(
            "Television",
            "Newspapers or news websites",
            "Social media",
            "Radio or podcasts",
            "Friends and family",
            "Somewhere else",
        ),
        required=False,
    ),
    QuestionSpec(
        key="media_trust",
        text="In general, how much do you trust the news media to report the news fully, "
        "accurately and fairly?",
        kind=Question.Kind.SLIDER,
        scope=_ABOUT,
        scale_min=0,
        scale_max=100,
        min_label="Not at all",
        max_label="Completely",
        required=False,
    ),
)

INSTRUMENTS: dict[str, Instrument] = {
    "kreps": Instrument(
        label="Kreps et al. (2020) credibility questions",
        questions=(
            QuestionSpec(
                key="credible",
                text="Is this article credible?",
                kind=Question.Kind.BINARY,
                scoring={"role": CREDIBLE},
            ),
            _four_point("believable", "believable"),
            _four_point("accurate", "accurate"),
            _four_point("clear", "clear"),
        ),
    ),
    "attention": Instrument(
        label="Attention check (instructed response)",
        questions=(
            QuestionSpec(
                key="attention",
                text="People read the news for many reasons. To show that you are reading "
                "carefully, please select 'Somewhat disagree' below.",
                kind=Question.Kind.CHOICE,
                scope=Question.Scope.ATTENTION_CHECK,
                choices=_AGREEMENT,
                expected_answer="Somewhat disagree",
                # Among the articles, as Prolific's policy allows: right after the first
                # (after the only one when participants read one).
                after_article=1,
            ),
        ),
    ),
    "comprehension": Instrument(
        label="Comprehension check (after the instructions)",
        questions=(
            QuestionSpec(
                key="understood_task",
                text="What will you do in this study?",
                kind=Question.Kind.CHOICE,
                scope=Question.Scope.COMPREHENSION,
                choices=(
                    "Write short news articles of my own",
                    "Read news articles and answer questions about each one",
                    "Watch news videos and summarise them",
                    "Sort news articles by topic",
                ),
                expected_answer="Read news articles and answer questions about each one",
            ),
            QuestionSpec(
                key="understood_answers",
                text="Are there right or wrong answers to the questions about the articles?",
                kind=Question.Kind.CHOICE,
                scope=Question.Scope.COMPREHENSION,
                choices=(
                    "Yes: each question has one right answer",
                    "No: I give my own judgement",
                ),
                expected_answer="No: I give my own judgement",
            ),
        ),
    ),
    "detection": Instrument(
        label="Human or machine? (per article)",
        questions=(
            QuestionSpec(
                key="written_by",
                text="Do you think this article was written by a human or by a machine?",
                kind=Question.Kind.CHOICE,
                choices=DETECTION_OPTIONS,
                scoring=DETECTION_SCORING,
            ),
        ),
    ),
    "detection_4": Instrument(
        label="Human or machine? Four points, Clark et al. (2021) (per article)",
        questions=(
            QuestionSpec(
                key="written_by_4",
                text="Was this article written by a human or by a machine?",
                kind=Question.Kind.CHOICE,
                choices=DETECTION_4_OPTIONS,
                scoring=detection_definition(DETECTION_4_OPTIONS),
            ),
        ),
    ),
    "demographics": Instrument(
        label="About the participant (demographics, asked once)",
        questions=DEMOGRAPHICS,
    ),
}


@transaction.atomic
def instrument_apply(*, study: Study, name: str) -> list[Question]:
    """Add a ready-made question set to a study whose design is not locked.

    Idempotent: questions whose key the study already has are left as they are, so
    applying an instrument twice adds nothing. New questions go after the existing ones of
    their scope. Returns the questions created. Raises ValueError for an unknown
    instrument and ValidationError when the study is live or closed.
    """
    if name not in INSTRUMENTS:
        raise ValueError(f"Unknown instrument {name!r}: use one of {', '.join(INSTRUMENTS)}.")
    locked = Study.objects.select_for_update().get(pk=study.pk)
    study_assert_editable(study=locked)
    existing = set(locked.questions.values_list("key", flat=True))
    created: list[Question] = []
    for spec in INSTRUMENTS[name].questions:
        if spec.key in existing:
            continue
        last = locked.questions.filter(scope=spec.scope).aggregate(m=Max("position"))["m"]
        created.append(
            Question.objects.create(
                study=locked,
                key=spec.key,
                text=spec.text,
                kind=spec.kind,
                scope=spec.scope,
                scale_min=spec.scale_min,
                scale_max=spec.scale_max,
                min_label=spec.min_label,
                max_label=spec.max_label,
                choices=list(spec.choices),
                expected_answer=spec.expected_answer,
                required=spec.required,
                after_article=spec.after_article,
                scoring=dict(spec.scoring),
                position=0 if last is None else last + 1,
            )
        )
    return created
