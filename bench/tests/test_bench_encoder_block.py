"""The encoder-block study's table: validation accuracy without and with the block at the budgets nearest its
columns, and on all candidates."""

from __future__ import annotations

from bench.encoder_block import report


def point(without: float, with_block: float) -> dict[str, float]:
    return {"without": without, "with": with_block, "gain": with_block - without}


def test_each_column_takes_the_nearest_measured_budget_and_a_far_one_stays_empty():
    result = {
        "device": "cpu (2 cores)",
        "strategy": "least_confidence",
        "corpora": {
            "snippets": {
                "seeds": 1,
                "budgets": {
                    "200": point(0.6, 0.7),
                    "400": point(0.62, 0.71),
                    "1000": point(0.66, 0.75),
                    "2000": point(0.7, 0.75),
                    "9524": point(0.77, 0.8),
                },
            }
        },
    }
    table = report(result)
    # 500 -> 400 (within 20%), 1,000 and 2,000 measured, 5,000 too far from any budget, then all 9,524 candidates
    assert (
        "| snippets | 1 | 62.0 → 71.0 (+9.0) | 66.0 → 75.0 (+9.0) | 70.0 → 75.0 (+5.0) |  | 77.0 → 80.0 (+3.0) (9,524) |"
        in table
    )
