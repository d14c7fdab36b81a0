"""A file written through atomic_file appears whole or not at all."""

from __future__ import annotations

from pathlib import Path

import pytest

from alloop.atomic_file import TEMP_PREFIX, atomic_file


def test_the_bytes_replace_the_file_when_the_block_ends(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "file.bin"  # missing parents are made
    with atomic_file(target) as handle:
        handle.write(b"first")
        assert not target.exists()  # nothing at the final name until the block ends
    assert target.read_bytes() == b"first"
    with atomic_file(target) as handle:
        handle.write(b"second")
        assert target.read_bytes() == b"first"
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["file.bin"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "file.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_file(target) as handle:
        handle.write(b"half of it")
        assert [p.name.startswith(TEMP_PREFIX) for p in tmp_path.iterdir()].count(True) == 1
        raise RuntimeError("the writer died")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.bin"]
