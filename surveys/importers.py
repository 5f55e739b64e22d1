"""Importing articles into the stimulus pool from JSON Lines or CSV files.

An import is all-or-nothing: every line is checked first, and if any line has an error
nothing is written and every error is reported with its line number, so a researcher can
fix the file and import it again. Articles already in the pool (same content hash), or
repeated within the file, are skipped and reported, not treated as errors.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import PurePath

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction

from surveys.models import WIKINEWS_ATTRIBUTION, Article, Team, content_hash, word_count

FORMATS = ("jsonl", "csv")

# Interviews ("((WN))" / "((WSS))" speaker markers) and long features read unlike short
# news stories; the corpus README's filter keeps them out of the demo pool.
_INTERVIEW_MARKER = re.compile(r"\(\((WN|WSS)\)\)")
DEMO_POOL_MAX_WORDS = 1500

_DATE_FORMAT = re.compile(r"\d{4}-\d{2}-\d{2}")
_MAX_LENGTHS = {
    "title": Article._meta.get_field("title").max_length,
    "external_id": Article._meta.get_field("external_id").max_length,
    "outlet": Article._meta.get_field("outlet").max_length,
    "url": Article._meta.get_field("url").max_length,
    "license": Article._meta.get_field("license").max_length,
    "model_name": Article._meta.get_field("model_name").max_length,
}
# Accepted spellings of each column; the first is the canonical name.
_ALIASES = {
    "external_id": ("id", "external_id"),
    "title": ("title", "headline"),
    "body": ("body", "text"),
    "published": ("date", "published"),
    "outlet": ("source", "outlet"),
    "url": ("url",),
    "license": ("license", "licence"),
    "source_id": ("source_id",),
    "model_name": ("model", "model_name"),
}


@dataclass
class ImportResult:
    """What an import did. ``errors`` non-empty means nothing was written."""

    created: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)
    skipped_details: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class _Row:
    line: int
    fields: Mapping[str, object]


def format_from_filename(name: str) -> str:
    """The import format implied by a file name's extension, or ValueError."""
    suffix = PurePath(name).suffix.lower().lstrip(".")
    if suffix in ("jsonl", "ndjson"):
        return "jsonl"
    if suffix == "csv":
        return "csv"
    raise ValueError(
        f'Cannot tell the format of "{name}" from its extension; '
        "use a .jsonl or .csv file, or give the format explicitly."
    )


def decode_upload(data: bytes) -> str:
    """UTF-8 text of an uploaded file (a byte-order mark is allowed), or ValueError."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"The file is not UTF-8 text (byte {error.start}): save it as UTF-8 and try again."
        ) from None


def _jsonl_rows(text: str, errors: list[str]) -> Iterator[_Row]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            errors.append(f"line {number}: invalid JSON: {error.msg} (column {error.colno})")
            continue
        if not isinstance(record, dict):
            errors.append(f"line {number}: expected a JSON object, got {type(record).__name__}")
            continue
        yield _Row(number, record)


def _csv_rows(text: str, errors: list[str]) -> Iterator[_Row]:
    reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
    try:
        header = reader.fieldnames
    except csv.Error as error:
        errors.append(f"line 1: invalid CSV header: {error}")
        return
    if not header:
        return
    columns = {name.strip().lower() for name in header if name}
    missing = [_ALIASES[key][0] for key in ("title", "body") if not columns & set(_ALIASES[key])]
    if missing:
        errors.append(
            "line 1: the header lacks column(s) "
            + ", ".join(f"'{name}'" for name in missing)
            + f" (found: {', '.join(sorted(columns)) or 'none'})"
        )
        return
    while True:
        # A quoted field may span lines (bodies hold blank lines between paragraphs), so
        # a record starts on the line after the previous record ended.
        start = reader.line_num + 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            errors.append(f"line {start}: invalid CSV: {error}")
            return
        if None in record:
            errors.append(f"line {start}: more values than header columns")
            continue
        cells = {(key or "").strip().lower(): value for key, value in record.items()}
        if not any((value or "").strip() for value in cells.values()):
            continue
        yield _Row(start, cells)


def _pick(row: _Row, key: str, errors: list[str]) -> str:
    """The row's value for a canonical key, as a stripped string ('' when absent)."""
    for alias in _ALIASES[key]:
        if alias in row.fields and row.fields[alias] is not None:
            value = row.fields[alias]
            if not isinstance(value, str):
                errors.append(f"line {row.line}: field '{alias}' must be a string")
                return ""
            return value.strip()
    return ""


def _has(row: _Row, key: str) -> bool:
    return any(alias in row.fields for alias in _ALIASES[key])


def _normalise_body(body: str) -> str:
    # Spreadsheet exports use CRLF; paragraphs must be separated by a bare blank line.
    return body.replace("\r\n", "\n").replace("\r", "\n").strip()


# Complexity kept: one flat list of independent checks of an imported row, each naming its line.
def _validate(  # noqa: C901
    row: _Row,
    *,
    origin: str,
    default_license: str,
    default_outlet: str,
    errors: list[str],
) -> dict[str, object] | None:
    """The Article field values for one row, or None after appending its errors."""
    before = len(errors)
    line = row.line
    values: dict[str, object] = {"origin": origin}
    for key in ("title", "body"):
        if not _has(row, key):
            errors.append(f"line {line}: missing field '{_ALIASES[key][0]}'")
            continue
        count = len(errors)
        value = _pick(row, key, errors)
        if not value and len(errors) == count:
            errors.append(f"line {line}: {key} is empty")
        values[key] = value
    values["body"] = _normalise_body(str(values.get("body", "")))
    for key in ("external_id", "url", "license", "outlet", "model_name"):
        values[key] = _pick(row, key, errors)
    values["license"] = values["license"] or default_license
    values["outlet"] = values["outlet"] or default_outlet
    for key, limit in _MAX_LENGTHS.items():
        text = str(values.get(key, ""))
        if limit is not None and len(text) > limit:
            errors.append(f"line {line}: {key} is {len(text)} characters long (at most {limit})")
    published = _pick(row, "published", errors)
    values["published"] = None
    if published:
        try:
            if not _DATE_FORMAT.fullmatch(published):
                raise ValueError
            values["published"] = date.fromisoformat(published)
        except ValueError:
            errors.append(f"line {line}: date '{published}' is not YYYY-MM-DD")
    if values["url"]:
        try:
            URLValidator(schemes=["http", "https"])(values["url"])
        except ValidationError:
            errors.append(f"line {line}: url '{values['url']}' is not an http(s) URL")
    if origin == Article.Origin.GENERATED:
        values["source_id"] = _pick(row, "source_id", errors)
        if not values["source_id"]:
            errors.append(f"line {line}: generated articles need 'source_id' (the real article)")
        if not values["model_name"]:
            errors.append(f"line {line}: generated articles need 'model' (the model's name)")
    if len(errors) > before:
        return None
    body = str(values["body"])
    values["in_demo_pool"] = not (
        _INTERVIEW_MARKER.search(body) or word_count(body) > DEMO_POOL_MAX_WORDS
    )
    if str(values["outlet"]).strip().lower() == "wikinews":
        values["attribution"] = WIKINEWS_ATTRIBUTION
    return values


# Complexity kept: parse, validate, de-duplicate, write: all or nothing in one transaction.
def articles_import(  # noqa: C901
    *,
    text: str,
    fmt: str,
    origin: str = Article.Origin.REAL,
    default_license: str = "",
    default_outlet: str = "",
    team: Team | None = None,
) -> ImportResult:
    """Import articles from JSON Lines or CSV text, all or nothing.

    JSONL: one object per line with ``title`` and ``body`` and optionally ``id``, ``date``
    (YYYY-MM-DD), ``source`` (the outlet), ``url`` and ``license``, as in
    ``data/wikinews_articles.jsonl``. CSV: a header naming at least ``title`` and ``body``;
    the optional columns are the same (``outlet`` is accepted for ``source``). Generated
    articles (``origin="generated"``) also need ``source_id`` (the external id of the real
    article that prompted them) and ``model``.

    If any line has an error, nothing is written and ``errors`` lists every one with its
    line number. Otherwise all new articles are created in one transaction; duplicates of
    pool articles or of earlier lines are counted in ``skipped``. Interviews and articles
    over 1,500 words get ``in_demo_pool=False``; Wikinews articles get the Wikinews
    attribution. New articles belong to ``team`` (None: the shared pool). Raises
    ValueError for an unknown format or origin.
    """
    if fmt not in FORMATS:
        raise ValueError(f"Unknown import format {fmt!r}: use one of {', '.join(FORMATS)}.")
    if origin not in Article.Origin.values:
        raise ValueError(
            f"Unknown origin {origin!r}: use one of {', '.join(Article.Origin.values)}."
        )
    errors: list[str] = []
    rows = list(_jsonl_rows(text, errors) if fmt == "jsonl" else _csv_rows(text, errors))
    if not rows and not errors:
        errors.append("the file holds no articles")
    valid: list[tuple[int, dict[str, object]]] = []
    for row in rows:
        values = _validate(
            row,
            origin=origin,
            default_license=default_license,
            default_outlet=default_outlet,
            errors=errors,
        )
        if values is not None:
            valid.append((row.line, values))
    sources = _resolve_sources(valid, errors) if origin == Article.Origin.GENERATED else {}
    if errors:
        errors.sort(key=_line_number)
        return ImportResult(errors=errors)

    result = ImportResult()
    hashes = {content_hash(str(v["title"]), str(v["body"])) for _, v in valid}
    existing = {
        digest: (pk, owner)
        for digest, pk, owner in Article.objects.filter(content_hash__in=hashes).values_list(
            "content_hash", "pk", "team_id"
        )
    }
    seen: dict[str, int] = {}
    to_create: list[Article] = []
    for line, values in valid:
        digest = content_hash(str(values["title"]), str(values["body"]))
        if digest in existing:
            pk, owner = existing[digest]
            # Another team's article is not named: its id is not the importer's to see.
            where = (
                f"the pool as article #{pk}"
                if team is None or owner in (None, team.pk)
                else "another team's articles"
            )
            result.skipped_details.append(f"line {line}: already in {where}")
            continue
        if digest in seen:
            result.skipped_details.append(f"line {line}: same text as line {seen[digest]}")
            continue
        seen[digest] = line
        source_id = values.pop("source_id", None)
        if source_id is not None:
            values["source_article"] = sources[str(source_id)]
        to_create.append(Article(**values, team=team))
    result.skipped = len(result.skipped_details)
    try:
        with transaction.atomic():
            for article in to_create:
                # save() derives the word count, content hash and lede.
                article.save()
    except IntegrityError:
        # Another import added one of these texts between the check and the write.
        return ImportResult(
            errors=[
                "another import added some of these articles at the same time; "
                "import the file again to skip them"
            ]
        )
    result.created = len(to_create)
    return result


def _resolve_sources(
    valid: list[tuple[int, dict[str, object]]], errors: list[str]
) -> dict[str, Article]:
    wanted = {str(v["source_id"]) for _, v in valid}
    found = {
        a.external_id: a
        for a in Article.objects.real().filter(external_id__in=wanted).order_by("id")
    }
    for line, values in valid:
        if str(values["source_id"]) not in found:
            errors.append(
                f"line {line}: source article '{values['source_id']}' is not a real article "
                "in the pool"
            )
    return found


def _line_number(message: str) -> int:
    match = re.match(r"line (\d+):", message)
    return int(match.group(1)) if match else 0
