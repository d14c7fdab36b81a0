from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from alloop.data.files import infer_classes, read_records, write_json, write_jsonl
from alloop.data.records import Record

CLASSES = ("negative", "positive")


def _write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


# ------------------------------------------------------------------------------------------------ round trips


def test_csv_with_class_names_round_trips_through_jsonl(tmp_path: Path) -> None:
    source = _write(
        tmp_path / "corpus.csv",
        'id,text,label\na1,"Great, really great",positive\na2,Dull,negative\na3,"Said ""meh""",\n',
    )
    records = read_records(source, classes=CLASSES)
    assert records == [
        Record("a1", "Great, really great", 1),
        Record("a2", "Dull", 0),
        Record("a3", 'Said "meh"', None),
    ]
    out = tmp_path / "out" / "records.jsonl"
    assert write_jsonl(out, records) == 3
    assert read_records(out, classes=CLASSES) == records
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert lines[2] == {"id": "a3", "text": 'Said "meh"'}  # no label key while unlabelled
    assert lines[0] == {"id": "a1", "text": "Great, really great", "label": 1}


def test_jsonl_ndjson_and_json_list_give_the_same_records(tmp_path: Path) -> None:
    rows = [{"id": "x", "text": "héllo wörld", "label": 1}, {"id": 7, "text": "b", "label": "0"}]
    jsonl = _write(tmp_path / "a.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n\n")
    ndjson = _write(tmp_path / "a.ndjson", "\n".join(json.dumps(r) for r in rows))
    as_list = _write(tmp_path / "a.json", json.dumps(rows, indent=2))
    expected = [Record("x", "héllo wörld", 1), Record("7", "b", 0)]
    assert read_records(jsonl) == expected
    assert read_records(ndjson) == expected
    assert read_records(as_list) == expected


def test_tsv_and_missing_ids_use_row_ordinals(tmp_path: Path) -> None:
    source = _write(tmp_path / "c.tsv", "text\tlabel\nfirst\t0\n\nsecond, with comma\t1\n")
    assert read_records(source) == [Record("0", "first", 0), Record("1", "second, with comma", 1)]
    json_source = _write(tmp_path / "c.json", json.dumps([{"text": "a"}, {"text": "b", "label": 2}]))
    assert read_records(json_source) == [Record("0", "a"), Record("1", "b", 2)]


def test_csv_with_utf8_bom_keeps_the_id_column(tmp_path: Path) -> None:
    source = _write(tmp_path / "bom.csv", "id,text,label\r\nr1,Ça va,1\r\n", encoding="utf-8-sig")
    assert source.read_bytes().startswith(b"\xef\xbb\xbf")
    assert read_records(source) == [Record("r1", "Ça va", 1)]


def test_labels_ints_digits_and_names(tmp_path: Path) -> None:
    source = _write(tmp_path / "l.jsonl", '{"text": "a", "label": 0}\n{"text": "b", "label": "1"}\n')
    assert [r.label for r in read_records(source)] == [0, 1]
    named = _write(tmp_path / "n.jsonl", '{"text": "a", "label": "positive"}\n{"text": "b", "label": 0}\n')
    assert [r.label for r in read_records(named, classes=CLASSES)] == [1, 0]


def test_multiline_csv_record_reports_the_line_it_starts_on(tmp_path: Path) -> None:
    good = _write(tmp_path / "g.csv", 'id,text\n1,"two\nlines"\n2,ok\n')
    assert read_records(good) == [Record("1", "two\nlines"), Record("2", "ok")]
    source = _write(tmp_path / "m.csv", 'id,text\n1,"two\nlines"\n2,ok\n1,dup\n')
    with pytest.raises(ValueError, match=r"line 5: duplicate id '1' \(first used on line 2\)"):
        read_records(source)


# ------------------------------------------------------------------------------------------------ errors


def test_empty_text_names_file_and_line(tmp_path: Path) -> None:
    source = _write(tmp_path / "e.csv", "id,text,label\n1,fine,0\n2,   ,1\n")
    with pytest.raises(ValueError, match=r"e\.csv: line 3: empty text"):
        read_records(source)
    jsonl = _write(tmp_path / "e.jsonl", '{"text": "ok"}\n{"text": ""}\n')
    with pytest.raises(ValueError, match=r"e\.jsonl: line 2: empty text"):
        read_records(jsonl)


def test_duplicate_id_names_both_lines(tmp_path: Path) -> None:
    source = _write(
        tmp_path / "d.jsonl", '{"id": "a", "text": "x"}\n{"id": "b", "text": "y"}\n{"id": "a", "text": "z"}\n'
    )
    with pytest.raises(ValueError, match=r"d\.jsonl: line 3: duplicate id 'a' \(first used on line 1\)"):
        read_records(source)


def test_unknown_label_names_line_and_known_classes(tmp_path: Path) -> None:
    source = _write(tmp_path / "u.csv", "id,text,label\n1,a,positive\n2,b,neutral\n")
    with pytest.raises(
        ValueError, match=r"u\.csv: line 3: unknown label 'neutral' \(known classes: negative, positive\)"
    ):
        read_records(source, classes=CLASSES)
    with pytest.raises(ValueError, match=r"line 2: unknown label 'positive' \(no class names were given\)"):
        read_records(source)
    out_of_range = _write(tmp_path / "r.jsonl", '{"text": "a", "label": 2}\n')
    with pytest.raises(ValueError, match=r"line 1: unknown label 2"):
        read_records(out_of_range, classes=CLASSES)
    negative = _write(tmp_path / "n.jsonl", '{"text": "a", "label": -1}\n')
    with pytest.raises(ValueError, match=r"line 1: unknown label -1"):
        read_records(negative)


def test_bad_json_names_the_line(tmp_path: Path) -> None:
    jsonl = _write(tmp_path / "b.jsonl", '{"text": "a"}\n{"text": "b",}\n')
    with pytest.raises(ValueError, match=r"b\.jsonl: line 2: invalid JSON"):
        read_records(jsonl)
    as_list = _write(tmp_path / "b.json", '[\n  {"text": "a"},\n  {"text": "b"\n]\n')
    with pytest.raises(ValueError, match=r"b\.json: line 4: invalid JSON"):
        read_records(as_list)
    not_a_list = _write(tmp_path / "o.json", '{"text": "a"}')
    with pytest.raises(ValueError, match=r"line 1: expected a JSON list"):
        read_records(not_a_list)
    not_objects = _write(tmp_path / "s.json", '[\n"a"\n]')
    with pytest.raises(ValueError, match=r"s\.json: line 2: expected an object"):
        read_records(not_objects)


def test_json_list_errors_cite_the_line_of_the_element(tmp_path: Path) -> None:
    source = _write(tmp_path / "l.json", '[\n  {"text": "a"},\n\n  {"text": " "}\n]\n')
    with pytest.raises(ValueError, match=r"l\.json: line 4: empty text"):
        read_records(source)


def test_require_label_and_other_structural_errors(tmp_path: Path) -> None:
    source = _write(tmp_path / "q.csv", "id,text,label\n1,a,0\n2,b,\n")
    with pytest.raises(ValueError, match=r"q\.csv: line 3: missing label"):
        read_records(source, require_label=True)
    wrong_width = _write(tmp_path / "w.csv", "id,text,label\n1,a,b,0\n")
    with pytest.raises(ValueError, match=r"line 2: expected 3 fields"):
        read_records(wrong_width)
    no_text = _write(tmp_path / "t.csv", "id,body\n1,a\n")
    with pytest.raises(ValueError, match=r"line 1: header has no 'text' column"):
        read_records(no_text)
    with pytest.raises(ValueError, match=r"unsupported file type '\.txt'"):
        read_records(_write(tmp_path / "x.txt", "hello"))
    with pytest.raises(ValueError, match="class names must be unique"):
        read_records(source, classes=("a", "a"))


def test_infer_classes(tmp_path: Path) -> None:
    names = _write(tmp_path / "n.csv", "text,label\na,spam\nb,ham\nc,eggs\nd,\n")
    assert infer_classes(names) == ("eggs", "ham", "spam")
    numbers = _write(tmp_path / "i.jsonl", '{"text": "a", "label": 10}\n{"text": "b", "label": "2"}\n')
    assert infer_classes(numbers) == tuple(str(i) for i in range(11))
    mixed = _write(tmp_path / "m.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": "ham"}\n')
    with pytest.raises(ValueError, match="mix class names"):
        infer_classes(mixed)
    unlabelled = _write(tmp_path / "u.jsonl", '{"text": "a"}\n')
    with pytest.raises(ValueError, match="no labels found"):
        infer_classes(unlabelled)


# ------------------------------------------------------------------------------------------------ writing


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path: Path) -> None:
    target = tmp_path / "s.jsonl"
    write_jsonl(target, [Record("a", "first")])
    write_jsonl(target, [Record("b", "second", 1)])
    assert read_records(target) == [Record("b", "second", 1)]

    def failing() -> Iterator[Record]:
        yield Record("c", "third")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_jsonl(target, failing())
    assert read_records(target) == [Record("b", "second", 1)]  # the old content survives a failed write
    write_json(tmp_path / "m.json", {"k": [1, 2]})
    assert json.loads((tmp_path / "m.json").read_text()) == {"k": [1, 2]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json", "s.jsonl"]
