"""The corpus-suite summary: per corpus the issue's keys, across corpora where alloop trails the best peer."""

from __future__ import annotations

from bench.suite import corpus_summary, report, summarize


def result(margin: dict[str, float], alloop: float, peers: dict[str, float]) -> dict:
    return {
        "file": "bench/results/suite/x.json",
        "corpus": {"path": "/c/x.jsonl", "classes": ["a", "b", "c"], "val_per_class": 10, "test_per_class": 20},
        "seeds": {"linear": 3},
        "full_data": {"linear": {"labels": 910, "accuracy": alloop}},
        "peer_margin": margin,
        "labels_to_best_peer_full_accuracy": None,
        "peers": {"peers": {name: {"budgets": [], "full_data": {"accuracy": acc}} for name, acc in peers.items()}},
    }


def test_a_corpus_summary_has_the_issues_keys() -> None:
    summary = corpus_summary(result({"500": 0.012, "1000": -0.004}, 0.81, {"st": 0.83, "modal": 0.80}))
    assert summary["classes"] == ["a", "b", "c"] and summary["seeds"] == 3
    assert summary["candidates"] == 910 and summary["size"] == 910 + 30 * 3
    assert summary["peer_margin"] == {"500": 0.012, "1000": -0.004}
    assert summary["full_data"] == {"alloop": 0.81, "best_peer": 0.83}


def test_the_suite_summary_lists_every_budget_alloop_trails() -> None:
    per = {
        "x": corpus_summary(result({"500": 0.012, "1000": -0.004}, 0.81, {"st": 0.83})),
        "y": corpus_summary(result({"500": 0.02}, 0.90, {"st": 0.88})),
    }
    out = summarize(per)
    assert (out["budgets_compared"], out["budgets_ahead"]) == (3, 2)
    assert out["behind"] == [{"corpus": "x", "labels": 1000, "margin": -0.004}] and out["worst_margin"] == -0.004
    assert out["full_data_gap"] == {"x": -0.02, "y": 0.02}
    table = report({"corpora": per}).splitlines()
    assert table[0] == "| corpus | classes | candidates | seeds | 500 | 1,000 | full data: alloop | best peer |"
    assert table[2] == "| x | 3 | 910 | 3 | +1.2 | -0.4 | 81.0 | 83.0 |"
    assert table[3] == "| y | 3 | 910 | 3 | +2.0 |  | 90.0 | 88.0 |"
