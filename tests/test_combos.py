"""Tests for augshard.core.combos: combo ids, folder names and enumeration modes."""

from __future__ import annotations

import hashlib

import pytest

from augshard.core.combos import MAX_DIR_NAME, Combo, combo_id_of, enumerate_combos


def _sha1_10(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:10]


@pytest.mark.parametrize(
    "methods",
    [("nlp_keyboard",), ("nlp_keyboard", "nlp_randword_delete"), ("a", "b", "c"), ("ta_contraction",)],
)
def test_combo_id_is_sha1_of_joined_ids(methods: tuple[str, ...]) -> None:
    expected = _sha1_10("+".join(methods))
    assert Combo(methods).combo_id == expected
    assert combo_id_of(methods) == expected
    assert combo_id_of(iter(methods)) == expected


def test_combo_id_known_value() -> None:
    # Written out once so a change to the hashing scheme shows up as a failing literal.
    assert Combo(("nlp_keyboard", "nlp_ocr")).combo_id == _sha1_10("nlp_keyboard+nlp_ocr")
    assert len(Combo(("x",)).combo_id) == 10


def test_combo_properties() -> None:
    combo = Combo(("nlp_keyboard", "nlp_randword_delete"))
    assert combo.k == 2
    assert combo.name == "nlp_keyboard+nlp_randword_delete"
    assert combo.dir_name == "combo_2_nlp_keyboard+nlp_randword_delete"


def test_order_matters_for_combo_id() -> None:
    assert Combo(("a", "b")).combo_id != Combo(("b", "a")).combo_id


def test_bounded_k_three_ids_gives_six_sorted_combos() -> None:
    combos = enumerate_combos(["c_m", "a_m", "b_m"], "bounded_k", 2)
    assert len(combos) == 6
    assert [c.methods for c in combos] == [
        ("a_m",),
        ("b_m",),
        ("c_m",),
        ("a_m", "b_m"),
        ("a_m", "c_m"),
        ("b_m", "c_m"),
    ]
    for c in combos:
        assert list(c.methods) == sorted(c.methods)
    assert len({c.combo_id for c in combos}) == 6


def test_bounded_k_does_not_depend_on_input_order_or_duplicates() -> None:
    a = enumerate_combos(["x", "y", "z"], "bounded_k", 2)
    b = enumerate_combos(["z", "x", "y", "x"], "bounded_k", 2)
    assert a == b


def test_bounded_k_max_size_larger_than_ids() -> None:
    combos = enumerate_combos(["a", "b", "c"], "bounded_k", 10)
    assert len(combos) == 7
    assert max(c.k for c in combos) == 3


def test_bounded_k_max_size_one_equals_single() -> None:
    assert enumerate_combos(["b", "a"], "bounded_k", 1) == enumerate_combos(["b", "a"], "single", 99)


def test_single() -> None:
    combos = enumerate_combos(["m2", "m1", "m3"], "single", 5)
    assert [c.methods for c in combos] == [("m1",), ("m2",), ("m3",)]
    assert all(c.k == 1 for c in combos)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_all_gives_every_non_empty_subset(n: int) -> None:
    ids = [f"m{i}" for i in range(n)]
    combos = enumerate_combos(ids, "all", 1)
    assert len(combos) == 2**n - 1
    assert len({c.methods for c in combos}) == 2**n - 1
    assert all(list(c.methods) == sorted(c.methods) for c in combos)


def test_unknown_mode() -> None:
    with pytest.raises(ValueError, match="pairs"):
        enumerate_combos(["a"], "pairs", 2)


def test_dir_name_falls_back_to_combo_id_when_too_long() -> None:
    methods = (
        "nlp_randchar_swap",
        "nlp_wordnet_insert",
        "ta_char_rand_swap",
        "ta_word_insert_syn",
        "ta_word_swap_morph",
        "ta_wordswap_wordnet",
    )
    combo = Combo(methods)
    assert len(f"combo_6_{'+'.join(methods)}") > MAX_DIR_NAME
    assert combo.dir_name == f"combo_6_{_sha1_10('+'.join(methods))}"


def test_dir_name_boundary_at_max_length() -> None:
    prefix = "combo_1_"
    exact = Combo(("a" * (MAX_DIR_NAME - len(prefix)),))
    assert len(exact.dir_name) == MAX_DIR_NAME
    assert exact.dir_name == prefix + exact.name
    over = Combo(("a" * (MAX_DIR_NAME - len(prefix) + 1),))
    assert over.dir_name == prefix + over.combo_id
