"""The study harness' variant syntax: a typo in a field name must stop the run, not silently measure the default."""

from __future__ import annotations

import pytest

from bench.linear_study import parse_variant


def test_a_variant_names_typed_model_config_overrides():
    assert parse_variant("base:linear_nb_scale=0") == ("base", {"linear_nb_scale": 0.0})
    assert parse_variant("p:linear_lsa_pivot=3000,linear_c=8") == ("p", {"linear_lsa_pivot": 3000, "linear_c": 8.0})
    assert parse_variant("nb:") == ("nb", {})


def test_an_unknown_field_stops_the_run_with_its_name():
    with pytest.raises(SystemExit, match="'linear_nb' is not a ModelConfig field"):
        parse_variant("x:linear_nb=2")
