"""The docs cite what the results files hold, and every link between them resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench import docs

LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


def test_every_generated_block_matches_its_results_file() -> None:
    assert docs.stale() == [], "run python -m bench.docs"


def test_render_rewrites_a_block_and_refuses_an_unknown_one() -> None:
    blocks = {"t": lambda: "| a |\n"}
    text = "before\n<!-- bench:t -->\nold table\n<!-- /bench:t -->\nafter\n"
    assert docs.render(text, blocks) == "before\n<!-- bench:t -->\n| a |\n<!-- /bench:t -->\nafter\n"
    with pytest.raises(KeyError, match="unknown generated block 'u'"):
        docs.render("<!-- bench:u -->\n<!-- /bench:u -->\n", blocks)


def test_a_stale_block_is_reported(tmp_path: Path) -> None:
    stale = tmp_path / "doc.md"
    stale.write_text("<!-- bench:suite-quick -->\n| typed by hand |\n<!-- /bench:suite-quick -->\n")
    assert docs.stale((stale,)) == [stale]


@pytest.mark.parametrize("path", docs.DOCS, ids=lambda p: p.name)
def test_relative_links_resolve(path: Path) -> None:
    for target, _ in LINK.findall(path.read_text()):
        if "://" not in target:
            assert (path.parent / target).exists(), f"{path.name} links to {target}, which does not exist"
