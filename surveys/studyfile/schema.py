"""Reading a study file: YAML with line numbers, checked against ``study.schema.json``.

PyYAML's composer gives every node its line, so an error found on the constructed data
(by ``jsonschema`` or by the importer's own checks) is mapped back through its path
(``conditions[1].quota``) to the line a researcher has to fix.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError

SCHEMA_PATH = Path(__file__).with_name("study.schema.json")
FORMAT = "credence-study/1"

Path_ = Sequence[str | int]


class _Loader(yaml.SafeLoader):
    """Safe YAML without the implicit timestamp type: a ``published: 2020-05-01`` that
    someone typed without quotes stays the string the schema expects."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


@dataclass(frozen=True)
class FileError:
    """One problem with a study file: where it is and what is wrong."""

    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}: " if self.line is not None else ""
        field = f"{self.path}: " if self.path else ""
        return f"{where}{field}{self.message}"


def path_text(path: Path_) -> str:
    """``("conditions", 1, "quota")`` as ``conditions[1].quota``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass
class ParsedFile:
    """The file's data and its node tree, to find the line of any path in it."""

    data: Any
    root: yaml.Node | None

    def line_of(self, path: Path_, *, key: bool = False) -> int | None:
        """The 1-based line of the value at ``path`` (of its key when ``key``), or of the
        deepest part of the path that exists."""
        node = self.root
        line = None if node is None else node.start_mark.line + 1
        for part in path:
            found: yaml.Node | None = None
            if isinstance(node, yaml.MappingNode):
                for key_node, value_node in node.value:
                    if key_node.value == part:
                        found = value_node
                        if key and part == path[-1]:
                            return int(key_node.start_mark.line) + 1
                        break
            elif (
                isinstance(node, yaml.SequenceNode)
                and isinstance(part, int)
                and 0 <= part < len(node.value)
            ):
                found = node.value[part]
            if found is None:
                return line
            node = found
            line = node.start_mark.line + 1
        return line

    def error(self, path: Path_, message: str, *, key: bool = False) -> FileError:
        return FileError(self.line_of(path, key=key), path_text(path), message)


class FileUnreadable(ValueError):
    """The text is not a YAML document this reader accepts."""

    def __init__(self, error: FileError) -> None:
        super().__init__(str(error))
        self.error = error


def _reject_aliases(node: yaml.Node) -> None:
    """Anchors and aliases share one node in several places: a small hostile file could
    expand to a huge one (billion laughs) when walked. Study files never need them."""
    seen: set[int] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            raise FileUnreadable(
                FileError(
                    current.start_mark.line + 1,
                    "",
                    "YAML anchors and aliases (&, *) are not allowed in a study file",
                )
            )
        seen.add(id(current))
        if isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                stack.extend((key_node, value_node))
        elif isinstance(current, yaml.SequenceNode):
            stack.extend(current.value)


def parse(text: str) -> ParsedFile:
    """The YAML document in ``text`` with its node tree; FileUnreadable when it is not
    one YAML document (the error names the line)."""
    loader = _Loader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            raise FileUnreadable(FileError(None, "", "the file is empty"))
        _reject_aliases(root)
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = None if mark is None else mark.line + 1
        raise FileUnreadable(
            FileError(line, "", f"not valid YAML: {error.problem or error.context}")
        ) from None
    except yaml.YAMLError as error:
        raise FileUnreadable(FileError(None, "", f"not valid YAML: {error}")) from None
    finally:
        loader.dispose()
    return ParsedFile(data=data, root=root)


@cache
def study_schema() -> dict[str, Any]:
    """The JSON Schema of study files (``study.schema.json``)."""
    schema: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return schema


def _short(value: Any) -> str:
    """``repr(value)``, cut to a length an error message can carry."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _describe(error: SchemaError, parsed: ParsedFile) -> FileError:
    path = list(error.absolute_path)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = set(error.schema.get("properties", {}))
        extra = sorted(str(k) for k in error.instance if k not in allowed)
        name = extra[0] if extra else "?"
        return parsed.error(
            [*path, name],
            f"unknown field (allowed here: {', '.join(sorted(allowed))})",
            key=True,
        )
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [str(k) for k in error.validator_value if k not in error.instance]
        name = missing[0] if missing else "?"
        return FileError(parsed.line_of(path), path_text([*path, name]), "missing required field")
    if error.validator == "enum":
        options = ", ".join(repr(v) for v in error.validator_value)
        return parsed.error(path, f"{_short(error.instance)} is not one of {options}")
    if error.validator == "type":
        wanted = error.validator_value
        wanted_text = " or ".join(wanted) if isinstance(wanted, list) else str(wanted)
        got = type(error.instance).__name__
        return parsed.error(path, f"expected {wanted_text}, got {got} {_short(error.instance)}")
    if error.validator == "maxLength" and isinstance(error.instance, str):
        return parsed.error(
            path, f"is {len(error.instance)} characters long (at most {error.validator_value})"
        )
    if error.validator == "minLength":
        return parsed.error(path, "may not be empty")
    if error.validator == "pattern":
        return parsed.error(
            path, f"{_short(error.instance)} does not match {error.validator_value!r}"
        )
    # jsonschema's own wording ("... is too long") quotes the value: say it without it.
    message = error.message
    if len(message) > 200:
        message = f"{_short(error.instance)} fails the schema's {error.validator!r} rule"
    return parsed.error(path, message)


def _control_characters(data: Any, path: list[str | int]) -> Iterator[list[str | int]]:
    """Paths of strings holding NUL, which PostgreSQL cannot store in text."""
    if isinstance(data, str):
        if "\x00" in data:
            yield path
    elif isinstance(data, dict):
        for key, value in data.items():
            yield from _control_characters(value, [*path, str(key)])
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _control_characters(value, [*path, index])


def schema_errors(parsed: ParsedFile) -> list[FileError]:
    """Every way ``parsed`` breaks the schema, ordered by line, each naming its field."""
    validator = Draft202012Validator(study_schema())
    errors = [_describe(e, parsed) for e in validator.iter_errors(parsed.data)]
    errors.extend(
        parsed.error(path, "contains a NUL character, which cannot be stored")
        for path in _control_characters(parsed.data, [])
    )
    return sorted(errors, key=lambda e: (e.line or 0, e.path, e.message))
