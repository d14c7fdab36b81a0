"""The planted-bug catalog stays plantable and covers every guarantee (planting and running is `make mutants`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.mutants.__main__ import plant
from tests.mutants.catalog import MUTANTS, Mutant

ROOT = Path(__file__).resolve().parents[2]
GUARANTEES = ROOT / "docs" / "guarantees.md"


def guarantee_rows() -> list[str]:
    return re.findall(r"^\| \*\*(.+?)\*\*", GUARANTEES.read_text(), flags=re.M)


@pytest.mark.parametrize("mutant", MUTANTS, ids=lambda m: m.name)
def test_each_snippet_occurs_once_where_its_mutant_says(mutant: Mutant) -> None:
    text = (ROOT / mutant.path).read_text()
    assert text.count(mutant.old) == 1, f"{mutant.name}: update its snippet to the code in {mutant.path}"
    assert mutant.old != mutant.new
    assert (ROOT / mutant.test.split("::")[0]).is_file(), mutant.test


def test_names_are_unique_and_every_guarantee_has_a_planted_bug() -> None:
    assert len({m.name for m in MUTANTS}) == len(MUTANTS)
    rows = guarantee_rows()
    assert len(rows) >= 10, rows
    for mutant in MUTANTS:
        assert any(row.startswith(mutant.guarantee) for row in rows), f"{mutant.name}: no row {mutant.guarantee!r}"
    for row in rows:
        assert any(row.startswith(m.guarantee) for m in MUTANTS), f"no planted bug checks {row!r}"


def test_planting_changes_exactly_the_snippet(tmp_path: Path) -> None:
    mutant = MUTANTS[0]
    copy = tmp_path / mutant.path
    copy.parent.mkdir(parents=True)
    original = (ROOT / mutant.path).read_text()
    copy.write_text(original)
    plant(tmp_path, mutant)
    assert copy.read_text() == original.replace(mutant.old, mutant.new) != original
    copy.write_text(original + mutant.old)
    with pytest.raises(SystemExit, match="occurs 2 times"):
        plant(tmp_path, mutant)
