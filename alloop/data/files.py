"""Reading a labelled corpus from the formats people actually have, and writing prepared splits safely.

Every reader reduces its format to a stream of ``(line number, ordinal, fields)`` so that the checks (non-empty
text, unique ids, known labels) are written once and every error can point at the line a person has to fix.
Writes go through a temporary file and :func:`os.replace`, so a crash or a concurrent reader never sees half a split.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from alloop.atomic_file import atomic_file
from alloop.data.records import SPLIT_NAMES, Record, Splits

CSV_SUFFIXES = (".csv",)
TSV_SUFFIXES = (".tsv",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")
JSON_SUFFIXES = (".json",)
SUPPORTED_SUFFIXES = CSV_SUFFIXES + TSV_SUFFIXES + JSONL_SUFFIXES + JSON_SUFFIXES
MANIFEST_NAME = "manifest.json"  # in a prepared directory, next to <split>.jsonl for every split

_Row = tuple[int, int, Mapping[str, Any]]  # (1-based line where the record starts, 0-based ordinal, fields)
_WHITESPACE = re.compile(r"[ \t\n\r]*")


def _skip_whitespace(text: str, pos: int) -> int:
    """The first position at or after ``pos`` that is not JSON whitespace."""
    match = _WHITESPACE.match(text, pos)
    return match.end() if match else pos  # the pattern matches the empty string, so always a match


# --------------------------------------------------------------------------------------------------- reading


def read_records(
    path: str | os.PathLike[str],
    classes: Sequence[str] | None = None,
    require_label: bool = False,
) -> list[Record]:
    """Load a corpus from ``.csv``, ``.tsv``, ``.jsonl``/``.ndjson`` or ``.json`` (a list of objects).

    Each record has ``text`` and optionally ``id`` and ``label``. A missing id becomes the record's 0-based ordinal,
    so an id-less file still gets stable ids. A label may be a class index or, when ``classes`` is given, a class
    name; without ``classes`` only indices (ints or digit strings) are understood, because a name cannot be mapped
    to an index without knowing the class order.
    """
    path = Path(path)
    class_index = _class_index(classes)
    records: list[Record] = []
    first_seen: dict[str, int] = {}
    for line, ordinal, fields in _iter_rows(path):
        where = f"{path}: line {line}"
        text = fields.get("text")
        if text is None:
            raise ValueError(f"{where}: record has no 'text'")
        if not isinstance(text, str):
            raise ValueError(f"{where}: 'text' must be a string, got {type(text).__name__}")
        if not text.strip():
            raise ValueError(f"{where}: empty text")
        record_id = _parse_id(fields.get("id"), ordinal, where)
        if record_id in first_seen:
            raise ValueError(f"{where}: duplicate id {record_id!r} (first used on line {first_seen[record_id]})")
        first_seen[record_id] = line
        label = _parse_label(fields.get("label"), classes, class_index, where)
        if label is None and require_label:
            raise ValueError(f"{where}: missing label (every record of this corpus needs one)")
        records.append(Record(record_id, text, label))
    return records


def infer_classes(path: str | os.PathLike[str]) -> tuple[str, ...]:
    """The class names a corpus implies, for when the caller did not say.

    Named labels give their sorted unique names. Numeric labels give ``("0", ..., str(max))`` so that label ``i``
    keeps meaning class ``i``; sorting digit strings would put "10" before "2". A mix of both is refused because
    any guess would silently mislabel part of the corpus.
    """
    path = Path(path)
    names: set[str] = set()
    numbers: set[int] = set()
    for line, _ordinal, fields in _iter_rows(path):
        value = fields.get("label")
        where = f"{path}: line {line}"
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError(f"{where}: label must be a class name or a class index, got {value!r}")
        if isinstance(value, int):
            if value < 0:
                raise ValueError(f"{where}: label {value} is negative")
            numbers.add(value)
        elif _is_index(value.strip()):
            numbers.add(int(value.strip()))
        else:
            names.add(value.strip())
    if names and numbers:
        raise ValueError(
            f"{path}: labels mix class names ({', '.join(sorted(names)[:5])}) and numbers "
            f"({', '.join(str(n) for n in sorted(numbers)[:5])}); pass the class names explicitly"
        )
    if names:
        return tuple(sorted(names))
    if numbers:
        return tuple(str(i) for i in range(max(numbers) + 1))
    raise ValueError(f"{path}: no labels found, so the classes cannot be inferred; pass them explicitly")


def _iter_rows(path: Path) -> Iterator[_Row]:
    suffix = path.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return _csv_rows(path, csv.excel)
    if suffix in TSV_SUFFIXES:
        return _csv_rows(path, csv.excel_tab)
    if suffix in JSONL_SUFFIXES:
        return _jsonl_rows(path)
    if suffix in JSON_SUFFIXES:
        return _json_rows(path)
    raise ValueError(f"{path}: unsupported file type {suffix!r}; use one of {', '.join(SUPPORTED_SUFFIXES)}")


def _csv_rows(path: Path, dialect: type[csv.Dialect]) -> Iterator[_Row]:
    # utf-8-sig drops the BOM spreadsheet programs put in front of the header, which would otherwise rename "id".
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, dialect)
        header: list[str] | None = None
        ordinal = 0
        last_line = 0
        while True:
            start = last_line + 1  # tracked by hand: the reader's line_num is where a multi-line record *ends*
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise ValueError(f"{path}: line {start}: malformed {dialect.__name__} row: {exc}") from None
            last_line = reader.line_num
            if not row or (len(row) == 1 and not row[0].strip() and header is None):
                continue
            if header is None:
                header = _check_header(row, path, start)
                continue
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise ValueError(
                    f"{path}: line {start}: expected {len(header)} fields ({', '.join(header)}), found {len(row)}; "
                    "is a text field with a delimiter missing its quotes?"
                )
            fields: dict[str, Any] = {}
            for name, cell in zip(header, row, strict=True):
                # An empty id or label cell means "not given", as an absent JSON key does; empty text is an error.
                if name == "text" or cell.strip():
                    fields[name] = cell
            yield start, ordinal, fields
            ordinal += 1


def _check_header(row: list[str], path: Path, line: int) -> list[str]:
    header = [cell.strip() for cell in row]
    duplicates = sorted({name for name in header if header.count(name) > 1})
    if duplicates:
        raise ValueError(f"{path}: line {line}: header repeats column(s) {', '.join(duplicates)}")
    if "text" not in header:
        raise ValueError(
            f"{path}: line {line}: header has no 'text' column (found: {', '.join(header)}); "
            "the first row must name the columns id, text, label"
        )
    return header


def _jsonl_rows(path: Path) -> Iterator[_Row]:
    with path.open(encoding="utf-8-sig") as handle:
        ordinal = 0
        for line, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: line {line}: invalid JSON: {exc.msg} (column {exc.colno})") from None
            yield line, ordinal, _as_object(value, path, line)
            ordinal += 1


def _json_rows(path: Path) -> Iterator[_Row]:
    """Walk a JSON list element by element, so errors can cite the line each object starts on."""
    text = path.read_text(encoding="utf-8-sig")
    decoder = json.JSONDecoder()
    pos = _skip_whitespace(text, 0)
    if pos >= len(text) or text[pos] != "[":
        line = text.count("\n", 0, pos) + 1
        raise ValueError(f"{path}: line {line}: expected a JSON list of objects")
    pos = _skip_whitespace(text, pos + 1)
    line, counted, ordinal = 1, 0, 0
    if pos < len(text) and text[pos] == "]":
        return
    while True:
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            value, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}: line {exc.lineno}: invalid JSON: {exc.msg} (column {exc.colno})") from None
        yield line, ordinal, _as_object(value, path, line)
        ordinal += 1
        pos = _skip_whitespace(text, end)
        if pos < len(text) and text[pos] == ",":
            pos = _skip_whitespace(text, pos + 1)
            continue
        if pos < len(text) and text[pos] == "]":
            rest = _skip_whitespace(text, pos + 1)
            if rest != len(text):
                bad_line = text.count("\n", 0, rest) + 1
                raise ValueError(f"{path}: line {bad_line}: invalid JSON: extra data after the list")
            return
        bad_line = text.count("\n", 0, pos) + 1
        raise ValueError(f"{path}: line {bad_line}: invalid JSON: expected ',' or ']' after a list element")


def _as_object(value: Any, path: Path, line: int) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise ValueError(f"{path}: line {line}: expected an object with 'text', got {type(value).__name__}")
    return value


def _class_index(classes: Sequence[str] | None) -> dict[str, int] | None:
    if classes is None:
        return None
    if isinstance(classes, str):
        raise ValueError(f"classes must be a sequence of names, not the string {classes!r}")
    names = [str(name) for name in classes]
    if not names:
        raise ValueError("classes is empty; give at least one class name")
    if any(not name.strip() for name in names):
        raise ValueError(f"class names must be non-empty, got {names}")
    if len(set(names)) != len(names):
        raise ValueError(f"class names must be unique, got {names}")
    return {name: index for index, name in enumerate(names)}


def _parse_id(value: Any, ordinal: int, where: str) -> str:
    if value is None:
        return str(ordinal)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"{where}: id must be a string or an integer, got {value!r}")
    record_id = str(value).strip()
    if not record_id:
        raise ValueError(f"{where}: empty id")
    return record_id


def _parse_label(
    value: Any, classes: Sequence[str] | None, class_index: dict[str, int] | None, where: str
) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"{where}: label must be a class name or a class index, got {value!r}")
    if isinstance(value, str):
        name = value.strip()
        if not name:
            return None
        if class_index is not None and name in class_index:
            return class_index[name]
        if not _is_index(name):
            known = f"known classes: {', '.join(classes)}" if classes is not None else "no class names were given"
            raise ValueError(f"{where}: unknown label {name!r} ({known})")
        value = int(name)
    index = int(value)
    if index < 0:
        raise ValueError(f"{where}: unknown label {index} (labels are non-negative class indices)")
    if classes is not None and index >= len(classes):
        raise ValueError(f"{where}: unknown label {index} (there are {len(classes)} classes: {', '.join(classes)})")
    return index


def _is_index(text: str) -> bool:
    return text.isascii() and text.isdigit()


# --------------------------------------------------------------------------------------------------- writing


def write_jsonl(path: str | os.PathLike[str], records: Iterable[Record]) -> int:
    """Write records as ``{"id", "text", "label"}`` lines, the label left out while unknown; returns the count."""
    lines = (json.dumps(_record_object(record), ensure_ascii=False) + "\n" for record in records)
    return _atomic_write(Path(path), lines)


def write_json(path: str | os.PathLike[str], value: Any) -> None:
    """Write one JSON document atomically (used for manifests, whose presence marks a finished job)."""
    _atomic_write(Path(path), [json.dumps(value, ensure_ascii=False, indent=2) + "\n"])


def _record_object(record: Record) -> dict[str, Any]:
    obj: dict[str, Any] = {"id": record.id, "text": record.text}
    if record.label is not None:
        obj["label"] = record.label
    return obj


def _atomic_write(path: Path, chunks: Iterable[str]) -> int:
    count = 0
    with atomic_file(path) as raw:
        handle = io.TextIOWrapper(raw, encoding="utf-8", newline="\n")
        for chunk in chunks:
            handle.write(chunk)
            count += 1
        handle.flush()
        handle.detach()  # the binary handle stays open for atomic_file to fsync and close
    return count


# --------------------------------------------------------------------------------------- prepared directories


def read_json_object(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A JSON object from a file, or None if it is missing or damaged: callers treat both as "not there yet"."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def read_manifest(out: str | os.PathLike[str]) -> dict[str, Any]:
    """The manifest of a directory written by ``alloop-prepare``; an actionable error if there is none."""
    manifest_path = Path(out) / MANIFEST_NAME
    manifest = read_json_object(manifest_path)
    if manifest is None:
        raise ValueError(f"{manifest_path} is missing or unreadable; run alloop-prepare --out {out} first")
    classes = manifest.get("classes")
    if not isinstance(classes, list) or not classes or not all(isinstance(c, str) for c in classes):
        raise ValueError(f"{manifest_path}: 'classes' must be a non-empty list of names; re-run alloop-prepare")
    return manifest


def load_prepared(out: str | os.PathLike[str]) -> Splits:
    """Read a prepared directory back into :class:`Splits`, every label checked against the manifest's classes."""
    out = Path(out)
    classes = tuple(read_manifest(out)["classes"])
    parts = {name: read_records(out / f"{name}.jsonl", classes=classes, require_label=True) for name in SPLIT_NAMES}
    return Splits(classes=classes, **parts)
