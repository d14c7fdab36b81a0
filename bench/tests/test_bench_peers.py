"""bench.peers on tiny synthetic corpora: small-text and modAL runners, the whole-run report and the CLI.

Skipped where the ``bench`` extra (small-text, modAL) is not installed, so ``make test`` works without it.
"""

from __future__ import annotations

import inspect
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("small_text")
pytest.importorskip("modAL")

from alloop.data import Record, Splits, balanced_splits
from bench import peers
from tests.synthetic import FILLER

CLASS_WORDS = [
    ["great", "wonderful", "superb", "loved", "brilliant", "moving", "delightful", "masterpiece"],
    ["awful", "terrible", "boring", "hated", "waste", "dull", "dreadful", "mess"],
    ["okay", "average", "fine", "decent", "passable", "mediocre", "middling", "alright"],
]
INITIAL = 12  # a multiple of 2 and of 3, so the balanced start is exactly balanced
BUDGETS = [20, 50, 80]
RUNNERS = [
    (peers.run_small_text, "breaking_ties"),
    (peers.run_small_text, "random"),
    (peers.run_modal, "uncertainty"),
    (peers.run_modal, "random"),
]
RUNNER_IDS = [f"{runner.__name__}-{strategy}" for runner, strategy in RUNNERS]


def make_records(n_classes: int, per_class: int, seed: int = 0) -> list[Record]:
    """Filler words plus two cue words, a quarter of them from a wrong class, so accuracy is high but not 1."""
    rng = random.Random(seed)
    records = []
    for label in range(n_classes):
        for i in range(per_class):
            words = [rng.choice(FILLER) for _ in range(8)]
            for _ in range(2):
                source = label if rng.random() < 0.75 else rng.randrange(n_classes)
                words.append(rng.choice(CLASS_WORDS[source]))
            rng.shuffle(words)
            records.append(Record(f"c{label}-{i:04d}", " ".join(words), label))
    return records


def make_splits(n_classes: int, per_class: int = 120) -> Splits:
    names = ("positive", "negative", "neutral")[:n_classes]
    records = make_records(n_classes, per_class)
    return balanced_splits(
        records, val_per_class=5, test_per_class=30, initial_per_class=10, pool_limit=None, seed=0, classes=names
    )


@pytest.fixture(scope="module", params=[2, 3], ids=["2-class", "3-class"])
def data(request: pytest.FixtureRequest) -> dict[str, Any]:
    splits = make_splits(request.param)
    candidates, test = peers.candidates_and_test(splits)
    matrix = peers.features([r.text for r in [*candidates, *test]])
    return {
        "splits": splits,
        "classes": request.param,
        "X_pool": matrix[: len(candidates)],
        "y_pool": np.array([r.label for r in candidates]),
        "X_test": matrix[len(candidates) :],
        "y_test": np.array([r.label for r in test]),
    }


def run(data: dict[str, Any], runner: Any, strategy: str, **overrides: Any) -> tuple[list[tuple[int, float]], dict]:
    log: dict[str, Any] = {}
    kwargs: dict[str, Any] = {"strategy": strategy, "initial": INITIAL, "budgets": BUDGETS, "seed": 0, "log": log}
    kwargs.update(overrides)
    result = runner(data["X_pool"], data["y_pool"], data["X_test"], data["y_test"], **kwargs)
    return result, log


@pytest.mark.parametrize(("runner", "strategy"), RUNNERS, ids=RUNNER_IDS)
def test_one_accuracy_per_budget_and_labels_as_asked(data: dict[str, Any], runner: Any, strategy: str) -> None:
    result, log = run(data, runner, strategy)
    assert [labels for labels, _ in result] == BUDGETS
    assert all(isinstance(acc, float) and 0.0 <= acc <= 1.0 for _, acc in result)
    assert result[-1][1] > 1.0 / data["classes"] + 0.15  # it learned something
    labelled = log["labelled"]
    assert len(labelled) == len(set(labelled.tolist())) == BUDGETS[-1]
    assert list(labelled[:INITIAL]) == list(log["initial"])
    assert np.bincount(data["y_pool"][log["initial"]]).tolist() == [INITIAL // data["classes"]] * data["classes"]


@pytest.mark.parametrize(("runner", "strategy"), RUNNERS, ids=RUNNER_IDS)
def test_rounds_capped_by_max_round_reach_the_same_budgets(data: dict[str, Any], runner: Any, strategy: str) -> None:
    result, log = run(data, runner, strategy, budgets=[12, 25, 40], max_round=6)
    assert [labels for labels, _ in result] == [12, 25, 40]
    assert len(set(log["labelled"].tolist())) == 40


@pytest.mark.parametrize(("runner", "strategy"), RUNNERS, ids=RUNNER_IDS)
def test_same_seed_same_numbers(data: dict[str, Any], runner: Any, strategy: str) -> None:
    first, first_log = run(data, runner, strategy, seed=7)
    state = np.random.get_state()
    second, second_log = run(data, runner, strategy, seed=7)
    assert first == second
    assert first_log["labelled"].tolist() == second_log["labelled"].tolist()
    other, other_log = run(data, runner, strategy, seed=8)
    assert other_log["initial"].tolist() != first_log["initial"].tolist()
    # The global numpy generator small-text draws from is restored afterwards.
    assert all(np.array_equal(a, b) if isinstance(a, np.ndarray) else a == b
               for a, b in zip(state, np.random.get_state(), strict=True))  # fmt: skip


@pytest.mark.parametrize("seed", [0, 5])
def test_both_peers_start_from_the_same_items(data: dict[str, Any], seed: int) -> None:
    initials = [run(data, runner, strategy, seed=seed)[1]["initial"].tolist() for runner, strategy in RUNNERS]
    assert all(initial == initials[0] for initial in initials)
    assert initials[0] == peers.balanced_initial(data["y_pool"], INITIAL, seed).tolist()


def test_the_first_budget_at_initial_is_the_initial_model(data: dict[str, Any]) -> None:
    """With a budget equal to ``initial`` a library's two strategies score the very same model."""
    for runner, strategies in ((peers.run_small_text, ("breaking_ties", "random")),
                               (peers.run_modal, ("uncertainty", "random"))):  # fmt: skip
        scores = [run(data, runner, strategy, budgets=[INITIAL, 30])[0][0] for strategy in strategies]
        assert scores[0] == scores[1]


def test_full_data_accuracy(data: dict[str, Any]) -> None:
    args = (data["X_pool"], data["y_pool"], data["X_test"], data["y_test"])
    for kind in ("small_text", "modal", "modal_uncertainty"):
        accuracy = peers.full_data_accuracy(kind, *args)
        assert 1.0 / data["classes"] + 0.2 < accuracy <= 1.0
    assert peers.full_data_accuracy("small_text", *args) == peers.full_data_accuracy("small_text", *args)
    with pytest.raises(ValueError, match="unknown kind"):
        peers.full_data_accuracy("torch", *args)


def test_bad_schedules_and_strategies_are_refused(data: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="budgets must increase"):
        run(data, peers.run_small_text, "random", budgets=[10, 20])  # below initial
    with pytest.raises(ValueError, match="budgets must increase"):
        run(data, peers.run_modal, "random", budgets=[30, 30])
    with pytest.raises(ValueError, match="candidates"):
        run(data, peers.run_modal, "uncertainty", budgets=[len(data["y_pool"]) + 1])
    with pytest.raises(ValueError, match="unknown strategy"):
        run(data, peers.run_small_text, "uncertainty")
    with pytest.raises(ValueError, match="at least one per class"):
        run(data, peers.run_modal, "random", initial=1, budgets=[20])


def test_run_peers_report() -> None:
    splits = make_splits(3)
    report = peers.run_peers(splits, initial=INITIAL, budgets=[INITIAL, 30], seeds=[0, 1])
    assert report["candidates"] == len(splits.initial) + len(splits.pool)
    assert report["test"] == len(splits.test)
    assert report["classes"] == list(splits.classes)
    assert set(report["peers"]) == set(peers.DEFAULT_PEERS)
    for entry in report["peers"].values():
        assert [point["labels"] for point in entry["budgets"]] == [INITIAL, 30]
        for point in entry["budgets"]:
            assert len(point["accuracies"]) == 2
            assert point["min"] <= point["mean"] <= point["max"] and point["std"] >= 0
        assert entry["full_data"]["labels"] == report["candidates"]
        assert len(entry["seconds"]["per_seed"]) == 2
    # Same initial items, so a library's strategies agree where no query has happened yet.
    first = {name: entry["budgets"][0]["accuracies"] for name, entry in report["peers"].items()}
    assert first["small_text_breaking_ties"] == first["small_text_random"]
    assert first["modal_uncertainty"] == first["modal_random"]


def test_pool_limit_is_a_fixed_subsample() -> None:
    splits = make_splits(2)
    limited, test = peers.candidates_and_test(splits, pool_limit=50)
    again, _ = peers.candidates_and_test(splits, pool_limit=50)
    assert len(limited) == 50 and [r.id for r in limited] == [r.id for r in again]
    assert {r.id for r in limited} <= {r.id for r in [*splits.initial, *splits.pool]}
    assert test == splits.test


def test_features_cache_round_trip(tmp_path: Path) -> None:
    texts = [r.text for r in make_records(2, 40)]
    fresh = peers.features(texts, cache_dir=tmp_path)
    assert len(list(tmp_path.glob("tfidf-*.npz"))) == 1
    cached = peers.features(texts, cache_dir=tmp_path)
    assert fresh.shape == cached.shape and (fresh != cached).nnz == 0
    assert peers.features(texts[:-1], cache_dir=tmp_path).shape[0] == len(texts) - 1
    assert len(list(tmp_path.glob("tfidf-*.npz"))) == 2


def test_modal_shim_matches_scikit_learn() -> None:
    from sklearn.utils import check_X_y

    needs_shim = "force_all_finite" not in inspect.signature(check_X_y).parameters
    assert peers._modal().shimmed == needs_shim
    import modAL.models.learners as learners

    # A second call leaves the wrapper as it is rather than wrapping it again.
    before = learners.check_X_y
    assert peers._shim_modal_check_x_y(learners) == needs_shim
    assert learners.check_X_y is before


def test_cli_on_a_corpus_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    corpus = tmp_path / "corpus.jsonl"
    names = ("neg", "neutral", "pos")
    rows = [{"id": r.id, "text": r.text, "label": names[r.label]} for r in make_records(3, 60)]
    corpus.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "peers.json"
    argv = ["--corpus", str(corpus), "--budgets", "12,30", "--initial", "12", "--seeds", "0",
            "--peers", "small_text_breaking_ties,modal_random", "--no-feature-cache", "--out", str(out)]  # fmt: skip
    assert peers.main(argv) == 0
    report = json.loads(out.read_text())
    assert report["classes"] == list(names)
    assert report["corpus"]["test_per_class"] == 12  # 20% of the smallest class (60) caps the default 2,500
    assert report["test_class_counts"] == [12, 12, 12] and report["candidates"] == 180 - 36
    assert set(report["peers"]) == {"small_text_breaking_ties", "modal_random"}
    assert report["versions"]["small-text"] and report["versions"]["scikit-learn"]
    assert report["device"].startswith("cpu (") and report["wall_seconds"]["total"] > 0
    assert "small_text_breaking_ties" in capsys.readouterr().out


def test_cli_needs_budgets_or_quick() -> None:
    with pytest.raises(SystemExit):
        peers.main([])
