"""`bench/label_efficiency.py --corpus`: a user's own multi-class corpus, through the real services, with the peers in
the same run on the same splits."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest

from bench import label_efficiency

pytestmark = pytest.mark.integration

WORDS = {
    "sports": ["goal", "match", "striker", "league", "coach"],
    "science": ["atom", "theory", "telescope", "genome", "lab"],
    "arts": ["painting", "novel", "sculpture", "poem", "opera"],
}
FILLER = ["the", "a", "today", "reported", "new", "some", "people", "said", "week", "big"]


def write_corpus(path: Path, per_class: int) -> Path:
    rng = random.Random(0)
    rows = []
    for name, words in WORDS.items():
        for i in range(per_class):
            text = [rng.choice(FILLER) for _ in range(8)] + [rng.choice(words) for _ in range(2)]
            rng.shuffle(text)
            rows.append({"id": f"{name}-{i}", "text": " ".join(text), "label": name})
    rng.shuffle(rows)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_corpus_splitting_rule(tmp_path):
    corpus = label_efficiency.corpus_sizes(write_corpus(tmp_path / "c.jsonl", 100))
    assert corpus.classes == ("arts", "science", "sports")  # named labels: sorted names
    assert (corpus.test_per_class, corpus.val_per_class) == (20, 10)  # 20% and 10% of the smallest class
    with pytest.raises(ValueError, match="too few"):
        label_efficiency.corpus_sizes(write_corpus(tmp_path / "tiny.jsonl", 4))


def test_curve_seeds_share_the_test_set_and_candidates(tmp_path):
    """A curve's seed draws its initial labels only: the full-data model and the peers (seed 0's files) are scored
    on the very test set every curve is, and choose from the same candidates."""
    from alloop.data import load_prepared

    corpus = label_efficiency.corpus_sizes(write_corpus(tmp_path / "c.jsonl", 100))
    plan = replace(label_efficiency.PLANS["linear"], initial_per_class=5)
    for pool_limit in (None, 60):  # all candidates, and --quick's capped ones
        splits = [
            load_prepared(
                label_efficiency.prepare_run_data(plan, seed, tmp_path / "work", tmp_path / "cache", pool_limit, corpus)
            )
            for seed in range(3)
        ]
        assert all(s.test == splits[0].test and s.val == splits[0].val for s in splits)
        candidates = [{r.id for r in [*s.initial, *s.pool]} for s in splits]
        assert candidates[0] == candidates[1] == candidates[2]
        assert len(candidates[0]) == 15 + (pool_limit or 300 - 15 - 90)
        assert len({frozenset(r.id for r in s.initial) for s in splits}) == 3


def test_a_three_class_corpus_runs_end_to_end_with_the_peers(tmp_path):
    out = tmp_path / "result.json"
    argv = [
        "--corpus",
        str(write_corpus(tmp_path / "corpus.jsonl", 80)),
        "--families",
        "linear",
        "--strategies",
        "random,kmeans_diversity",
        "--seeds",
        "1",
        "--initial-per-class",
        "4",
        "--budgets",
        "24,36",
        "--workdir",
        str(tmp_path / "work"),
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    assert label_efficiency.main([*argv, "--out", str(out)]) == 0
    assert not out.with_suffix(".partial.json").exists()
    result = json.loads(out.read_text())
    assert result["corpus"]["classes"] == ["arts", "science", "sports"]
    for strategy in ("random", "kmeans_diversity"):
        curve = result["curves"]["linear"][strategy]
        assert sorted(int(n) for n in curve) == [12, 24, 36]  # 4 per class to start, then the budgets
        assert curve["36"]["mean"] > 0.6  # three classes: chance is a third
    assert result["full_data"]["linear"]["accuracy"] > 0.9
    assert result["labels_to_seed_full_accuracy"] is None  # no seed model on a user's corpus
    assert set(result["peers"]["peers"]) >= {"small_text_breaking_ties", "modal_uncertainty"}
    assert set(result["peer_margin"]) == set()  # 500+ labels: beyond this corpus, so no margin is claimed
    assert "labels_to_best_peer_full_accuracy" in result and result["best_peer_full_accuracy"] > 0.6
    table = label_efficiency.report(result)
    assert table.startswith("corpus: test accuracy (%)") and "| 12 | 24 | 36 |" in table
    assert (tmp_path / "result.png").stat().st_size > 1000
    assert result["splits"]["split_seed"] == 0 and result["resumed"] is None

    # Resumed from its own results with one more seed: the first seed's curves and the full-data model are reused,
    # only seed 1 runs.
    again = tmp_path / "again.json"
    assert label_efficiency.main([*argv, "--seeds", "2", "--resume", str(out), "--out", str(again)]) == 0
    resumed = json.loads(again.read_text())
    assert sorted(resumed["resumed"]["reused"]) == ["linear/full_data", "linear/kmeans_diversity/0", "linear/random/0"]
    assert resumed["full_data"] == result["full_data"]
    assert [r for r in resumed["runs"] if r["seed"] == 0] == result["runs"]
    assert sorted((r["strategy"], r["seed"]) for r in resumed["runs"] if r["seed"] == 1) == [
        ("kmeans_diversity", 1),
        ("random", 1),
    ]
    with pytest.raises(SystemExit, match="pool_limit"):  # other candidates: refused before anything runs
        label_efficiency.main([*argv, "--pool-limit", "150", "--resume", str(out), "--out", str(tmp_path / "x.json")])


def test_the_default_plan_is_fitted_to_a_small_corpus_or_refused_in_one_line(tmp_path, capsys):
    corpus = write_corpus(tmp_path / "corpus.jsonl", 80)  # 56 candidates per class: no default budget fits
    base = [
        "--corpus",
        str(corpus),
        "--workdir",
        str(tmp_path / "work"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--out",
        str(tmp_path / "r.json"),
    ]
    with pytest.raises(SystemExit, match="give --budgets"):
        label_efficiency.main(base)
    with pytest.raises(SystemExit, match="use at most 5"):  # a tenth of the smallest class's 56 candidates
        label_efficiency.main([*base, "--initial-per-class", "20", "--budgets", "100"])
