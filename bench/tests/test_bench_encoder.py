"""The encoder benchmark's table reads its results file: storage, throughput and the hours per million items."""

from __future__ import annotations

from bench.encoder import first_sentence, report


def test_the_table_names_storage_rate_and_the_cost_of_a_million_items():
    row = {"texts": 8, "texts_per_second": 12.5, "pieces_median": 300, "windows_mean": 1.5, "hours_per_million": 22.2}
    result = {
        "device": "cpu (2 cores)",
        "batch": 64,
        "max_windows": 8,
        "window": 256,
        "width": 384,
        "bytes_per_item_float16": 768,
        "texts": {"long": row},
    }
    table = report(result)
    assert "768 bytes per item" in table and "0.77 GB per million" in table
    assert "| long | 300 | 1.50 | 12.5 | 22.2 |" in table


def test_a_first_sentence_ends_at_its_stop():
    assert first_sentence("Great film. Would watch again!") == "Great film."
    assert first_sentence("No stop at all") == "No stop at all"
