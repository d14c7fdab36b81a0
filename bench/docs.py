"""The generated tables of the README and docs/: benchmark numbers written from bench/results/*.json (never typed by
hand), the planted-bug table from tests/mutants/catalog.py, and the configuration reference from the settings classes
of alloop/environment.py.

A generated block sits between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->``; NAME is a key of
:data:`BLOCKS`, whose function renders it from a results file with that benchmark's own ``--report``.

    python -m bench.docs            # rewrite every block from the results files
    python -m bench.docs --check    # exit 1, naming the stale blocks, when a doc disagrees with its results

The test suite runs the check, so a results file and the docs that cite it cannot drift apart.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))


def _suite(name: str) -> Callable[[], str]:
    def render() -> str:
        from bench import suite

        return suite.report(json.loads((RESULTS / name).read_text()))

    return render


def _label_efficiency(name: str) -> Callable[[], str]:
    def render() -> str:
        from bench import label_efficiency

        return label_efficiency.report(json.loads((RESULTS / name).read_text()))

    return render


def _redis_durability() -> str:
    from bench import redis_durability

    return redis_durability.report(json.loads((RESULTS / "redis_durability.json").read_text()))


def _scale() -> str:
    from bench import scale

    return scale.report(json.loads((RESULTS / "scale.json").read_text()))


def _scale_summary() -> str:
    from bench import scale

    return scale.summary(json.loads((RESULTS / "scale.json").read_text()))


def _pool_sample() -> str:
    from bench import pool_sample

    return pool_sample.report(json.loads((RESULTS / "pool_sample.json").read_text()))


def _encoder() -> str:
    from bench import encoder

    return encoder.report(json.loads((RESULTS / "encoder.json").read_text()))


def _encoder_block() -> str:
    from bench import encoder_block

    return encoder_block.report(json.loads((RESULTS / "encoder_block.json").read_text()))


def _configuration() -> str:
    from alloop import environment

    return environment.markdown()


def _mutants() -> str:
    from tests.mutants import catalog

    return catalog.report()


BLOCKS: dict[str, Callable[[], str]] = {
    "suite-quick": _suite("suite_quick.json"),
    "redis-durability": _redis_durability,
    "mutants": _mutants,
    "configuration": _configuration,
    "scale": _scale,
    "scale-summary": _scale_summary,
    "pool-sample": _pool_sample,
    "encoder": _encoder,
    "encoder-block": _encoder_block,
    "imdb": _label_efficiency("label_efficiency.json"),
    "imdb-quick": _label_efficiency("label_efficiency_quick.json"),
}

_BLOCK = re.compile(r"(<!-- bench:(?P<name>[\w-]+) -->\n)(?P<body>.*?)(<!-- /bench:(?P=name) -->)", re.DOTALL)


def render(text: str, blocks: dict[str, Callable[[], str]] = BLOCKS) -> str:
    """``text`` with every generated block rewritten; an unknown block name is an error, not left alone."""

    def fill(match: re.Match[str]) -> str:
        name = match["name"]
        if name not in blocks:
            raise KeyError(f"unknown generated block {name!r}; known: {', '.join(sorted(blocks))}")
        return f"{match[1]}{blocks[name]().rstrip()}\n{match[4]}"

    return _BLOCK.sub(fill, text)


def stale(paths: tuple[Path, ...] = DOCS) -> list[Path]:
    """The docs whose generated blocks differ from what the results files give now."""
    return [path for path in paths if render(text := path.read_text()) != text]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report docs that disagree with their results")
    args = parser.parse_args(argv)
    if args.check:
        outdated = stale()
        for path in outdated:
            print(f"{path.relative_to(ROOT)}: generated blocks disagree with bench/results; run python -m bench.docs")
        return 1 if outdated else 0
    for path in DOCS:
        text = path.read_text()
        if (new := render(text)) != text:
            path.write_text(new)
            print(f"rewrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
