"""The families registry: one entry per family, each naming what it reads and needs, loadable by name."""

from __future__ import annotations

import dataclasses

import pytest

from alloop.models.config import ModelConfig
from alloop.models.families import FAMILIES, FAMILY_NAMES, Family, get_family


@pytest.mark.parametrize("name", FAMILY_NAMES)
def test_each_family_names_real_settings_and_a_module_with_its_code(name: str) -> None:
    family = get_family(name)
    fields = {f.name for f in dataclasses.fields(ModelConfig)}
    assert set(family.settings) <= fields and "n_classes" in family.settings
    for function in ("build_vectorizer", "build_classifier", "compile_classifier", "vectorize"):
        assert callable(getattr(family.code, function))
    if family.exact:  # an exact family runs its whole round and says what it keeps between rounds
        assert callable(family.code.solve_round) and family.new_cache(None) is not None
    else:
        assert family.new_cache(None) is None


def test_an_unknown_family_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="unknown model family 'svm'; choose one of bilstm, linear"):
        get_family("svm")
    assert sorted(FAMILIES) == list(FAMILY_NAMES)


def test_a_missing_requirement_is_named_with_what_to_install() -> None:
    needs = (("no_such_mod", "pip x"),)
    family = Family("x", "alloop.models.bilstm", "", ("n_classes",), False, False, False, needs)
    with pytest.raises(ValueError, match="the x family needs no_such_mod, which is not installed here: pip x"):
        family.check_installed()
    get_family("linear").check_installed()  # scikit-learn is in the dev install
