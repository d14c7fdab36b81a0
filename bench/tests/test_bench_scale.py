"""bench/scale.py's report: every measured key reaches the table, and an older file without swaps still renders."""

from __future__ import annotations

from bench.scale import report, summary

ENTRY = {
    "submit_items_per_second": 48104,
    "max_redis_stall_ms": 9.6,
    "swap_seconds_p50": 0.61,
    "swap_failed_requests": 0,
    "index_fresh_seconds": {"2": 3.5},
    "rescore_ratio_to_in_process": {"2": 0.8},
    "redis_bytes_per_item": 1849,
    "query_p50_ms": {"least_confidence": 8.5, "kmeans_diversity": 1456.8},
    "query_p99_ms": {"least_confidence": 9.9, "kmeans_diversity": 2001.0},
    "labels_per_second": {"2400": 8385},
    "replica_rss_bytes": 1_728_204_800,
}


def test_the_report_has_a_column_per_size_and_every_measurement() -> None:
    text = report({"device": "cpu", "replicas": 2, "k": 100, "sizes": {"10000": ENTRY, "100000": ENTRY}})
    assert "| | 10,000 items | 100,000 items |" in text
    for shown in (
        "48,104",
        "9.6",
        "0.61",
        "| 0 |",
        "3.5",
        "0.80",
        "8.5 / 9.9",
        "1,457 / 2,001",
        "8,385 (2,400 queued)",
    ):
        assert shown in text, shown
    assert "1.73" in text and "1,849" in text


def test_a_file_from_before_the_swap_keys_still_renders_with_blanks() -> None:
    old = {k: v for k, v in ENTRY.items() if not k.startswith("swap")}
    text = report({"device": "cpu", "replicas": 2, "k": 100, "sizes": {"10000": old}})
    assert "| publish to every replica serving it, median (s) |  |" in text


def test_the_summary_speaks_of_the_largest_pool() -> None:
    small = {**ENTRY, "redis_bytes_per_item": 77}
    text = summary({"device": "cpu", "replicas": 2, "k": 100, "sizes": {"10000": small, "1000000": ENTRY}})
    assert text.startswith("Measured with 1,000,000 pool items")
    assert f"{ENTRY['redis_bytes_per_item']:,} bytes" in text and " 77 bytes" not in text
