"""The pool-sample harness on a small corpus: a sample's size reaches the round, and the table reads the summary."""

from __future__ import annotations

from pathlib import Path

from bench.pool_sample import curve_rows, report, summarize


def test_each_sample_size_reaches_the_round_and_is_summarized(corpus, tmp_path: Path):
    rows = curve_rows(corpus["pool"].parent, seed=0, sizes=[100, 0], budgets=[150], work=tmp_path)
    assert [(r["sample"], r["sampled_items"], r["budget"]) for r in rows] == [(100, 100, 150), ("all", 200, 150)]
    assert all(0.5 <= r["val_accuracy"] <= 1 for r in rows)
    summary = summarize(rows)
    assert set(summary) == {"100", "all"} and summary["100"]["150"]["seeds"] == 1
    table = report({"summary": summary})
    assert "| 100 |" in table and "| all |" in table and "150 labels" in table
