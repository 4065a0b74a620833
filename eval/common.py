"""Small helpers shared by the benchmark modules: file I/O with located errors, reply text."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

PathLike = str | os.PathLike


class EvalInputError(ValueError):
    """Bad benchmark input. The message names the file and, where known, the line and field."""

    def __init__(self, message: str, path: PathLike | None = None, line: int | None = None,
                 field: str | None = None):
        self.path = None if path is None else str(path)
        self.line = line
        self.field = field
        super().__init__(f"{where(path, line, field)}: {message}" if path is not None else message)


def where(path: PathLike | None, line: int | None = None, field: str | None = None) -> str:
    """``file:line (field 'x')`` for error messages."""
    text = str(path) if path is not None else "<input>"
    if line is not None:
        text += f":{line}"
    if field is not None:
        text += f" (field '{field}')"
    return text


def _open_for_reading(path: PathLike):
    path = Path(path)
    if not path.is_file():
        raise EvalInputError("file not found" if not path.exists() else "not a regular file", path)
    return path.open(encoding="utf-8")


def read_jsonl(path: PathLike) -> list[tuple[int, dict]]:
    """Read a JSONL file into ``(line_number, record)`` pairs; blank lines are skipped.

    Every record must be a JSON object; anything else raises :class:`EvalInputError` naming the line.
    """
    rows = []
    with _open_for_reading(path) as f:
        for lineno, text in enumerate(f, start=1):
            if not text.strip():
                continue
            try:
                record = json.loads(text)
            except json.JSONDecodeError as e:
                raise EvalInputError(f"invalid JSON ({e.msg} at column {e.colno})", path, lineno) from None
            if not isinstance(record, dict):
                raise EvalInputError(f"expected a JSON object, got {type(record).__name__}", path, lineno)
            rows.append((lineno, record))
    return rows


def write_jsonl(path: PathLike, records: Iterable[Mapping], append: bool = False) -> None:
    """Write records one JSON object per line (UTF-8, non-ASCII kept), creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a" if append else "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def read_json(path: PathLike) -> Any:
    """Read one JSON document; a syntax error names the file and line."""
    with _open_for_reading(path) as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as e:
            raise EvalInputError(f"invalid JSON ({e.msg} at column {e.colno})", path, e.lineno) from None


def read_json_rows(path: PathLike, text_fields: Sequence[str], what: str = "rows",
                   label: str = "row") -> Iterator[tuple[str, Mapping]]:
    """``(label, record)`` for each object of a JSON list, after checking the ``text_fields`` are strings.

    The upstream AlpacaEval files (``model_outputs.json``, ``annotations.json``, cross-annotations) are all
    such lists; an error names the file and the ``label i.field`` at fault.
    """
    data = read_json(path)
    if not isinstance(data, list):
        raise EvalInputError(f"expected a JSON list of {what}, got {type(data).__name__}", path)
    for i, record in enumerate(data):
        name = f"{label} {i}"
        if not isinstance(record, Mapping):
            raise EvalInputError(f"{name} is not an object", path)
        for key in text_fields:
            field(record, key, str, path, label=f"{name}.{key}")
        yield name, record


def write_json(path: PathLike, obj: Any, indent: int = 2) -> None:
    """Write one JSON document (UTF-8, non-ASCII kept), creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=indent)
        f.write("\n")


def read_yaml(path: PathLike) -> Any:
    """Read a YAML file with ``yaml.safe_load``; a syntax error names the file and line."""
    import yaml

    with _open_for_reading(path) as f:
        try:
            return yaml.safe_load(f)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            raise EvalInputError(f"invalid YAML ({getattr(e, 'problem', e)})", path,
                                 None if mark is None else mark.line + 1) from None


def field(record: Mapping, key: str, kind: type | tuple[type, ...], path: PathLike | None = None,
          line: int | None = None, label: str | None = None) -> Any:
    """``record[key]`` checked to exist and be of ``kind``; else an error naming file, line and field."""
    if key not in record:
        raise EvalInputError("missing field", path, line, label or key)
    value = record[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _as_tuple(kind)):
        names = "/".join(k.__name__ for k in _as_tuple(kind))
        raise EvalInputError(f"expected {names}, got {type(value).__name__}", path, line, label or key)
    return value


def _as_tuple(kind) -> tuple:
    return kind if isinstance(kind, tuple) else (kind,)


def as_plain(obj: Any) -> Any:
    """Turn an OpenAI SDK object (pydantic) into plain dicts/lists; plain data passes through."""
    if hasattr(obj, "model_dump"):
        return obj.model_dump()
    return obj


def first_choice(response: Any) -> dict:
    """The first choice of a chat-completion reply (dict or SDK object), or ``{}`` if there is none.

    A bare choice (a dict with ``message``/``logprobs`` and no ``choices``) is returned as is, so
    stored ``raw_completion`` values parse the same way as live replies.
    """
    response = as_plain(response)
    if not isinstance(response, Mapping):
        return {}
    if "choices" in response:
        choices = response.get("choices") or []
        return as_plain(choices[0]) if choices and isinstance(as_plain(choices[0]), Mapping) else {}
    return dict(response)


def response_text(response: Any) -> str:
    """Text of a judge reply: a plain string, or ``choices[0].message.content`` of a chat completion.

    A missing or null content gives ``""`` (which parses as "no verdict").
    """
    if isinstance(response, str):
        return response
    choice = first_choice(response)
    message = choice.get("message") or {}
    content = message.get("content") if isinstance(message, Mapping) else None
    if content is None:
        content = choice.get("text")
    return content if isinstance(content, str) else ""
