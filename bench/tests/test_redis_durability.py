"""bench.redis_durability against a real redis-server: each setting is the one measured, every label recorded."""

from __future__ import annotations

from bench import redis_durability


def test_a_small_run_measures_both_settings_and_reports_them(tmp_path):
    result = redis_durability.run(tmp_path, labels=40, batch=10, labelers=2, repeats=1)
    assert set(result["runs"]) == {"everysec", "always"}
    for runs in result["runs"].values():
        (run,) = runs
        assert run["serial_p50_ms"] > 0 and run["serial_p99_ms"] >= run["serial_p50_ms"]
        assert run["serial_labels_per_s"] > 0 and run["concurrent_labels_per_s"] > 0
    table = redis_durability.report(result)
    assert "| `everysec` |" in table and "| `always` |" in table and "2 labelers at once" in table
