"""The label-efficiency benchmark's bookkeeping: mean curves over seeds and the keys it reports."""

from __future__ import annotations

from pathlib import Path

from bench.label_efficiency import first_reaching, mean_curves, summarize


def run(family: str, strategy: str, seed: int, points: list[tuple[int, float]]) -> dict:
    return {
        "family": family,
        "strategy": strategy,
        "seed": seed,
        "curve": [{"labels": n, "accuracy": a} for n, a in points],
    }


def test_mean_curves_and_keys():
    runs = [
        run("linear", "random", 0, [(200, 0.78), (1000, 0.84), (2000, 0.86)]),
        run("linear", "random", 1, [(200, 0.80), (1000, 0.84), (2000, 0.86)]),
        run("linear", "entropy", 0, [(200, 0.77), (1000, 0.86), (2000, 0.89)]),
        run("linear", "entropy", 1, [(200, 0.77), (1000, 0.86), (2000, 0.89)]),
    ]
    curves = mean_curves(runs)
    point = curves["linear"]["random"][200]
    assert (point["mean"], point["min"], point["max"], point["n"]) == (0.79, 0.78, 0.80, 2)
    assert abs(point["std"] - 0.01) < 1e-12  # population std over seeds
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
    peers = {
        "peers": {
            "a": {
                "budgets": [
                    {"labels": 400, "mean": 0.78},
                    {"labels": 600, "mean": 0.80},
                    {"labels": 1000, "mean": 0.85},
                    {"labels": 2000, "mean": 0.87},
                ],
                "full_data": {"accuracy": 0.86},
            },
            "b": {
                "budgets": [
                    {"labels": 400, "mean": 0.79},
                    {"labels": 1000, "mean": 0.84},
                    {"labels": 2000, "mean": 0.89},
                ]
            },
        }
    }
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
        "full_data": {"linear": {"accuracy": 0.9146}},
        "seeds": {"linear": 1},
        "peers": {"peers": {"st": {"budgets": [{"labels": 200, "mean": 0.7}, {"labels": 500, "mean": 0.8}]}}},
    }
    lines = report(result).splitlines()
    assert lines[0] == "IMDB: test accuracy (%), mean ± std over seeds"
    assert lines[2] == "| labels | 200 | 500 | 1,000 | 2,000 | all candidates |"  # only budgets some curve covers
    assert lines[4] == "| alloop `linear` / random (1 seed) | 80.0 | 81.5 | 84.0 | 88.0 | 91.5 |"
    assert lines[5] == "| peer: st | 70.0 | 80.0 |  |  |  |"


def test_report_shows_the_spread_over_seeds_and_a_small_corpus_own_rounds():
    from bench.label_efficiency import report

    curves = mean_curves([run("linear", "random", s, [(12, 0.5 + s / 100), (24, 0.6 + s / 50)]) for s in range(2)])
    result = {
        "curves": {fam: {s: {str(n): p for n, p in c.items()} for s, c in st.items()} for fam, st in curves.items()},
        "seeds": {"linear": 2},
        "corpus": {"path": "/x/bbc-news.jsonl"},
        "peers": {"peers": {"st": {"budgets": [{"labels": 12, "mean": 0.4, "std": 0.02}]}}},
    }
    lines = report(result).splitlines()
    assert lines[0].startswith("bbc-news: ")
    assert lines[2] == "| labels | 12 | 24 | all candidates |"  # below 200 labels: the rounds themselves
    assert lines[4] == "| alloop `linear` / random (2 seeds) | 50.5 ±0.5 | 61.0 ±1.0 |  |"
    assert lines[5] == "| peer: st | 40.0 ±2.0 |  |  |"


def test_labels_to_the_best_peers_full_data_accuracy():
    from bench.label_efficiency import compare_with_peers

    curves = mean_curves([run("linear", "random", 0, [(500, 0.80), (1000, 0.86), (2000, 0.90)])])
    peers = {
        "peers": {
            "a": {"budgets": [{"labels": 500, "mean": 0.7}], "full_data": {"accuracy": 0.85}},
            "b": {"budgets": [{"labels": 500, "mean": 0.7}], "full_data": {"accuracy": 0.88}},
        }
    }
    out = compare_with_peers(curves, peers, seed_target=None)
    assert out["best_peer_full_accuracy"] == 0.88 and out["labels_to_best_peer_full_accuracy"] == 2000
    peers["peers"]["b"]["full_data"]["accuracy"] = 0.95
    assert compare_with_peers(curves, peers, seed_target=None)["labels_to_best_peer_full_accuracy"] is None


def test_a_plan_is_fitted_to_a_corpus_or_refused_in_one_line():
    import pytest

    from bench.label_efficiency import PLANS, Corpus, fit_plan

    small = Corpus(Path("bbc.jsonl"), ("a", "b", "c"), val_per_class=10, test_per_class=20, counts=(330, 400, 500))
    assert small.candidates_per_class() == [300, 370, 470]
    linear = fit_plan(PLANS["linear"], small, None, initial_asked=False)
    assert linear.initial_per_class == 30  # a tenth of the smallest class's 300 candidates, not 100
    assert linear.budgets == [400, 600, 800, 1000]  # the plan's rounds up to the 1,140 candidates
    bigger = Corpus(Path("tweets.jsonl"), ("a", "b"), 500, 1000, (9000, 4000))
    bilstm = fit_plan(PLANS["bilstm"], bigger, None, initial_asked=False)
    assert bilstm.initial_per_class == 250 and bilstm.budgets == [
        1500,
        2000,
        3000,
        4000,
        5000,
        6000,
        7000,
        8000,
        9000,
        10000,
    ]
    with pytest.raises(SystemExit, match="use at most 30"):
        fit_plan(PLANS["bilstm"], small, None, initial_asked=True)
    assert fit_plan(PLANS["linear"], small, 570, initial_asked=False).initial_per_class == 15  # a pool limit halves it
    with pytest.raises(SystemExit, match="give --budgets"):
        fit_plan(PLANS["linear"], Corpus(Path("t.jsonl"), ("a", "b"), 1, 2, (60, 60)), None, initial_asked=False)


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


def test_resume_drops_the_runs_of_families_whose_settings_changed():
    from bench.label_efficiency import only_families, reusable

    lstm = run("bilstm", "random", 0, [(1000, 0.7), (1500, 0.72)])
    previous = {
        "runs": [run("linear", "random", 0, [(200, 0.8), (400, 0.83)]), lstm],
        "full_data": {"linear": {"accuracy": 0.92}, "bilstm": {"accuracy": 0.86}},
    }
    kept = only_families(previous, {"bilstm"})
    assert kept["full_data"] == {"bilstm": {"accuracy": 0.86}}
    assert reusable(kept, "linear", "random", 0, [400]) is None
    assert reusable(kept, "bilstm", "random", 0, [1500]) is lstm


def test_resume_refuses_files_from_other_splits_or_another_model():
    import pytest

    from bench.label_efficiency import _protocol, check_resumable

    same = {**_protocol(None, None), "runs": []}
    assert check_resumable(same, None, None) == {"bilstm", "linear"}
    with pytest.raises(SystemExit, match="pool_limit"):
        check_resumable(same, 10_000, None)
    with pytest.raises(SystemExit, match="splits"):
        check_resumable({**same, "splits": {"split_seed": 1}}, None, None)
    # Another family's settings leave a family's runs reusable; its own settings do not.
    settings = same["model_defaults"]
    assert check_resumable({**same, "model_defaults": {**settings, "linear_nb_unlabeled": 0.0}}, None, None) == {
        "bilstm"
    }
    assert check_resumable({**same, "model_defaults": {**settings, "lstm_units": 8}}, None, None) == {"linear"}
    with pytest.raises(SystemExit, match="every family"):
        check_resumable({**same, "model_defaults": {**settings, "n_classes": 3}}, None, None)
    # Older files record no model settings (and the oldest no splits): their runs measured another model. Files
    # whose curves' Query draws were not seeded cannot be reused as if they were exact.
    for older in (
        {k: v for k, v in same.items() if k != "model_defaults"},
        {"pool_limit": None, "runs": []},
        {k: v for k, v in same.items() if k != "query_seed"},
    ):
        with pytest.raises(SystemExit, match="older benchmark"):
            check_resumable(older, None, None)


def test_every_model_setting_belongs_to_a_family():
    """A setting no family claims would be ignored by --resume's comparison: a new one must be placed."""
    from dataclasses import fields

    from alloop.models.config import ModelConfig
    from alloop.models.families import FAMILIES, FAMILY_NAMES

    claimed = {name for family in FAMILY_NAMES for name in FAMILIES[family].settings}
    assert claimed == {f.name for f in fields(ModelConfig)} - {"family"}


def test_the_plans_seed_caps_apply_to_its_default_seeds_only():
    from bench.label_efficiency import PLANS, strategy_seeds

    plan = PLANS["linear"]
    strategies = list(plan.strategies)
    default = strategy_seeds(plan, strategies, plan.seeds, asked=False)
    assert default == {"random": 3, "least_confidence": 3, "class_balanced": 3, "diversity": 1, "kmeans_diversity": 1}
    assert set(strategy_seeds(plan, strategies, 2, asked=True).values()) == {2}  # --seeds 2: every strategy
    assert strategy_seeds(plan, ["kmeans_diversity"], 1, asked=False) == {"kmeans_diversity": 1}


def test_report_names_each_strategys_own_seed_count():
    from bench.label_efficiency import report

    curve = {"200": {"mean": 0.8}, "1000": {"mean": 0.88}}
    table = report(
        {
            "curves": {"linear": {"random": curve, "diversity": curve}},
            "seeds": {"linear": 3},
            "seeds_by_strategy": {"linear": {"random": 3, "diversity": 1}},
        }
    )
    assert "`linear` / random (3 seeds)" in table and "`linear` / diversity (1 seed)" in table


def test_the_oracles_query_seed_repeats_per_run_seed_and_differs_per_round():
    import pytest

    from clients.oracle import query_seed

    assert query_seed(None, 1) == 0  # no run seed: fresh randomness
    assert query_seed(0, 1) == query_seed(0, 1) > 0
    seeds = {query_seed(s, r) for s in range(3) for r in range(1, 20)}
    assert len(seeds) == 3 * 19 and min(seeds) > 0
    with pytest.raises(ValueError):
        query_seed(-1, 1)


def test_the_benchmark_seeds_each_curves_oracle_and_the_oracle_seeds_each_query(tmp_path):
    from bench.label_efficiency import oracle_args
    from clients.oracle import Oracle, query_seed

    args = oracle_args("q:1", "t:2", tmp_path, "random", 2, [400, 600], "negative,positive", tmp_path / "run")
    assert args.seed == 2
    assert args.pool == "imdb"
    assert (
        oracle_args("q:1", "t:2", tmp_path, "random", 2, [400], "a,b", tmp_path / "run", "bbc-news").pool == "bbc-news"
    )

    class Recorder:  # a stand-in for the query stub: records the Query, leases nothing
        def __init__(self) -> None:
            self.requests: list = []

        def Query(self, request):
            self.requests.append(request)
            return type("Response", (), {"selected": []})()

    stub = Recorder()
    Oracle(stub, None, "p", {}, seed=args.seed).label_round("random", 5, round_no=3)  # type: ignore[arg-type]
    assert [r.seed for r in stub.requests] == [query_seed(2, 3)]
