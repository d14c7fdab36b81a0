"""The label-efficiency benchmark's bookkeeping: mean curves over seeds and the keys it reports."""

from __future__ import annotations

from bench.label_efficiency import first_reaching, mean_curves, summarize


def run(family: str, strategy: str, seed: int, points: list[tuple[int, float]]) -> dict:
    return {"family": family, "strategy": strategy, "seed": seed,
            "curve": [{"labels": n, "accuracy": a} for n, a in points]}


def test_mean_curves_and_keys():
    runs = [
        run("linear", "random", 0, [(200, 0.78), (1000, 0.84), (2000, 0.86)]),
        run("linear", "random", 1, [(200, 0.80), (1000, 0.84), (2000, 0.86)]),
        run("linear", "entropy", 0, [(200, 0.77), (1000, 0.86), (2000, 0.89)]),
        run("linear", "entropy", 1, [(200, 0.77), (1000, 0.86), (2000, 0.89)]),
    ]
    curves = mean_curves(runs)
    assert curves["linear"]["random"][200] == {"mean": 0.79, "min": 0.78, "max": 0.80, "n": 2}
    assert first_reaching(curves["linear"]["entropy"], 0.856) == 1000
    assert first_reaching(curves["linear"]["random"], 0.9) is None
    keys = summarize(curves, {"linear": {"accuracy": 0.885, "labels": 40000}})
    assert keys["labels_to_seed_full_accuracy"] == 1000 and keys["labels_to_seed_full_accuracy_by"] == "linear/entropy"
    assert "FINDINGS" in keys["seed_full_accuracy_source"]
    assert keys["labels_to_full_accuracy"] == 2000 and keys["bilstm_labels_to_full_accuracy"] is None
    assert keys["beats_random"] == {"linear/entropy": True}  # from 1,000 labels on; the cold start does not count


def test_the_seed_models_own_full_accuracy_is_the_target_when_measured():
    curves = mean_curves([run("linear", "random", 0, [(500, 0.83), (1000, 0.85)])])
    keys = summarize(curves, {"bilstm": {"accuracy": 0.84, "labels": 40000}})
    assert keys["seed_full_accuracy_target"] == 0.84 and keys["labels_to_seed_full_accuracy"] == 1000


def test_peer_margin_is_ours_minus_the_best_peer_interpolated_between_rounds():
    from bench.label_efficiency import compare_with_peers

    curves = mean_curves([run("linear", "random", 0, [(400, 0.80), (600, 0.84), (1000, 0.86), (2000, 0.88)])])
    peers = {"peers": {
        "a": {"budgets": [{"labels": 400, "mean": 0.78}, {"labels": 600, "mean": 0.80}, {"labels": 1000, "mean": 0.85},
                          {"labels": 2000, "mean": 0.87}], "full_data": {"accuracy": 0.86}},
        "b": {"budgets": [{"labels": 400, "mean": 0.79}, {"labels": 1000, "mean": 0.84}, {"labels": 2000, "mean": 0.89}]},
    }}
    out = compare_with_peers(curves, peers, seed_target=0.856)
    # 500 lies between rounds: ours 0.82, a 0.79, b 0.79 + (0.84 - 0.79) / 6 = 0.7983 -> margin 0.82 - 0.7983
    assert out["peer_margin"]["500"] == round(0.82 - (0.79 + 0.05 / 6), 4)
    assert out["peer_margin"]["1000"] == 0.01 and out["peer_margin"]["2000"] == -0.01
    assert "5000" not in out["peer_margin"]  # beyond every curve: not reported rather than extrapolated
    assert out["peer_labels_to_seed_full_accuracy"] == 2000  # a: 0.85 at 1,000 is below 0.856; b reaches 0.89 at 2,000
    assert out["peer_labels_to_own_full_accuracy_by_peer"] == {"a": 2000, "b": None}


def test_report_interpolates_each_curve_and_leaves_the_outside_blank():
    from bench.label_efficiency import report

    curves = mean_curves([run("linear", "random", 0, [(200, 0.80), (1000, 0.84), (2000, 0.88)])])
    result = {
        "curves": {fam: {s: {str(n): p for n, p in c.items()} for s, c in st.items()} for fam, st in curves.items()},
        "full_data": {"linear": {"accuracy": 0.9146}}, "seeds": {"linear": 1},
        "peers": {"peers": {"st": {"budgets": [{"labels": 200, "mean": 0.7}, {"labels": 500, "mean": 0.8}]}}},
    }
    lines = report(result).splitlines()
    assert lines[0].startswith("| labels | 200 | 500 | 1,000 | 2,000 | 5,000 |")
    assert lines[2] == "| alloop `linear` / random (1 seed) | 80.0 | 81.5 | 84.0 | 88.0 |  |  |  | 91.5 |"
    assert lines[3] == "| peer: st | 70.0 | 80.0 |  |  |  |  |  |  |"


def test_resume_reuses_only_the_same_family_strategy_seed_and_rounds():
    from bench.label_efficiency import reusable

    earlier = run("linear", "random", 1, [(200, 0.8), (400, 0.82), (600, 0.84)])
    previous = {"runs": [run("linear", "random", 0, [(200, 0.8), (400, 0.83)]), earlier]}
    assert reusable(previous, "linear", "random", 1, [400, 600]) is earlier
    assert reusable(previous, "linear", "random", 1, [400, 600, 800]) is None  # other rounds
    assert reusable(previous, "linear", "random", 2, [400, 600]) is None
    assert reusable(previous, "bilstm", "random", 1, [400, 600]) is None
    assert reusable(previous, "linear", "least_confidence", 1, [400, 600]) is None
    assert reusable({}, "linear", "random", 1, [400, 600]) is None


def test_resume_refuses_files_from_other_splits():
    import pytest

    from bench.label_efficiency import _protocol, check_resumable

    same = {**_protocol(None, None), "runs": []}
    check_resumable(same, None, None)
    with pytest.raises(SystemExit, match="pool_limit"):
        check_resumable(same, 10_000, None)
    with pytest.raises(SystemExit, match="splits"):
        check_resumable({**same, "splits": {"split_seed": 1}}, None, None)
    # The results written before the split fix record no protocol: refused unless the operator vouches for them.
    before_fix = {"pool_limit": None, "corpus": "imdb (seed splits)", "runs": []}
    with pytest.raises(SystemExit, match="does not record its splits"):
        check_resumable(before_fix, None, None)
    check_resumable(before_fix, None, None, assume_same_splits=True)
    with pytest.raises(SystemExit, match="pool_limit"):  # what a file does record must still match
        check_resumable(before_fix, 10_000, None, assume_same_splits=True)
