"""Tests for augshard.methods.catalogue and .compat: safe ids, the original tool's catalogue format, selection."""

from __future__ import annotations

from pathlib import Path

import pytest

from augshard.core.errors import ConfigError, MethodError
from augshard.methods import PROBE, build_method, check_method
from augshard.methods.catalogue import load_catalogue, read_catalogue, resolve_selection, select
from augshard.methods.compat import unsupported
from augshard.methods.spec import MethodSpec

REPO = Path(__file__).resolve().parents[1]
OWN = load_catalogue(REPO / "conf" / "augment_methods.yaml")
# The original tool's tools/generate_augsets.py catalogue, byte for byte: fully qualified kinds.
ORIGINAL_FILE = Path(__file__).resolve().parent / "fixtures" / "original_augment_methods.yaml"
ID_RULE = "id may hold only letters, digits, '_', '-' and '.', and may not start with '.'"
AUGMENTER_KWARGS_NOTE = "ignored arg augmenter_kwargs (augshard draws one candidate per seeded call)"


def _catalogue(tmp_path: Path, entries: str, name: str = "conf.yaml") -> Path:
    path = tmp_path / name
    path.write_text("methods:\n" + entries, encoding="utf-8")
    return path


# --- ids are safe in folder names -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["a/b", "../up", "..", ".hidden", "a+b", "a b", "a\\\\b", "é", "a:b", "a\\nb"])
def test_unsafe_id_is_one_line_naming_file_entry_and_rule(tmp_path: Path, bad: str) -> None:
    path = _catalogue(tmp_path, f'  - {{id: "{bad}", lib: nlpaug, kind: KeyboardAug}}\n')
    with pytest.raises(ConfigError) as info:
        load_catalogue(path)
    shown = bad.replace("\\\\", "\\").replace("\\n", "\n")
    assert str(info.value) == f"{path}: method {shown!r}: {ID_RULE}"
    assert "\n" not in str(info.value)


def test_unsafe_id_in_the_original_format_is_rejected_too(tmp_path: Path) -> None:
    path = _catalogue(tmp_path, "  - {id: a/b, lib: nlpaug, kind: nlpaug.augmenter.char.KeyboardAug}\n")
    with pytest.raises(ConfigError, match="method 'a/b': id may hold only"):
        load_catalogue(path)


@pytest.mark.parametrize("good", ["nlp_keyboard", "ta-v2.1", "_x", "-x", "9", "a..b", "A.B_C-d"])
def test_safe_ids_load(tmp_path: Path, good: str) -> None:
    path = _catalogue(tmp_path, f'  - {{id: "{good}", lib: nlpaug, kind: KeyboardAug}}\n')
    assert list(load_catalogue(path)) == [good]


def test_every_shipped_id_is_safe() -> None:
    assert len(OWN) == 28
    assert read_catalogue(REPO / "conf" / "augment_methods.yaml").notes == ()


# --- the original tool's catalogue --------------------------------------------------------------------------

ORIGINAL_KINDS = {
    "nlp_wordnet_syn": "SynonymAug",
    "nlp_randword_delete": "RandomWordAug",
    "nlp_randword_insert": "RandomWordAug",
    "nlp_randword_sub": "RandomWordAug",
    "nlp_randchar_ins": "RandomCharAug",
    "nlp_randchar_del": "RandomCharAug",
    "nlp_randchar_sub": "RandomCharAug",
    "nlp_randchar_swap": "RandomCharAug",
    "nlp_keyboard": "KeyboardAug",
    "nlp_ocr": "OcrAug",
    "nlp_spelling": "SpellingAug",
    "nlp_cwe_sub_roberta": "ContextualWordEmbsAug",
    "nlp_cwe_insert_roberta": "ContextualWordEmbsAug",
    "nlp_backtranslation_de": "BackTranslationAug",
    "ta_wordswap_embedding": "WordSwapEmbedding",
    "ta_wordswap_wordnet": "WordSwapWordNet",
    "ta_wordswap_homoglyph": "WordSwapHomoglyphSwap",
    "ta_wordswap_qwerty": "WordSwapQWERTY",
    "ta_char_neighbor": "WordSwapNeighboringCharacterSwap",
    "ta_char_rand_del": "WordSwapRandomCharacterDeletion",
    "ta_char_rand_ins": "WordSwapRandomCharacterInsertion",
    "ta_char_rand_swap": "WordSwapRandomCharacterSubstitution",
    "ta_word_delete": "WordDeletion",
    "ta_word_insert_syn": "WordInsertionRandomSynonym",
    "ta_mlm_sub_bert": "WordSwapMaskedLM",
    "ta_mlm_sub_roberta": "WordSwapMaskedLM",
    "ta_word_swap_morph": "WordSwapInflections",
    "ta_contraction": "WordSwapContract",
}
# Where an original entry's args differ from augshard's entry of the same id: (only in the original, only in
# augshard's). Every difference but ta_contraction's is a library default written out, so behaviour is the same.
ARG_DIFFERENCES = {
    "nlp_spelling": ({"aug_min": 1}, {}),  # SpellingAug's default aug_min is 1
    # batch_size 32 is the adapter's default; nlpaug infers model_type 'roberta' from the model's path
    "nlp_cwe_sub_roberta": ({}, {"model_type": "roberta", "batch_size": 32}),
    "nlp_cwe_insert_roberta": ({}, {"model_type": "roberta", "batch_size": 32}),
    # TextAttack 0.3.11's Augmenter defaults to pct_words_to_swap=0.1; WordSwapMaskedLM to bae, 50, 16
    **{
        i: ({}, {"pct_words_to_swap": 0.1})
        for i in ORIGINAL_KINDS
        if i.startswith("ta_") and i not in {"ta_mlm_sub_bert", "ta_mlm_sub_roberta", "ta_contraction"}
    },
    "ta_mlm_sub_bert": ({}, {"pct_words_to_swap": 0.1, "method": "bae", "max_candidates": 50, "batch_size": 16}),
    "ta_mlm_sub_roberta": ({}, {"pct_words_to_swap": 0.1, "method": "bae", "max_candidates": 50, "batch_size": 16}),
    # kept as written: the original's contraction contracts nothing (see its note)
    "ta_contraction": ({}, {"pct_words_to_swap": 0.1, "constraints": ["RepeatModification"]}),
}
# The original's ids augshard's own catalogue can run here (tests/test_catalogue_offline.py's 22, less
# nlp_randword_swap and nlp_wordnet_insert, which the original does not have).
RUNNABLE = {
    *("nlp_randchar_ins", "nlp_randchar_del", "nlp_randchar_sub", "nlp_randchar_swap", "nlp_keyboard", "nlp_ocr"),
    *("nlp_randword_delete", "nlp_randword_sub", "nlp_wordnet_syn", "nlp_spelling"),
    *("ta_wordswap_qwerty", "ta_char_neighbor", "ta_char_rand_del", "ta_char_rand_ins", "ta_char_rand_swap"),
    *("ta_word_delete", "ta_wordswap_wordnet", "ta_word_insert_syn", "ta_contraction", "ta_wordswap_homoglyph"),
}


def _original() -> dict[str, MethodSpec]:
    return load_catalogue(ORIGINAL_FILE)


def test_every_original_entry_loads_as_augshards_kind() -> None:
    specs = _original()
    assert {i: s.kind for i, s in specs.items()} == ORIGINAL_KINDS
    assert {i: s.lib for i, s in specs.items()} == {
        i: "nlpaug" if i.startswith("nlp_") else "textattack" for i in specs
    }
    assert set(specs) - set(OWN) == {"nlp_randword_insert", "nlp_backtranslation_de"}
    assert specs["ta_char_rand_del"].args == {}  # random, delete and augmenter_kwargs consumed
    assert specs["ta_wordswap_embedding"].args == {"max_candidates": 8}
    assert specs["ta_mlm_sub_bert"].args == {"masked_language_model": "bert-base-uncased"}
    assert specs["nlp_cwe_sub_roberta"].requires_gpu and not specs["nlp_keyboard"].requires_gpu


def test_original_entries_match_augshards_own_where_their_args_do() -> None:
    specs = _original()
    for method_id, spec in specs.items():
        own = OWN.get(method_id)
        if own is None:
            continue
        assert spec.kind == own.kind, method_id
        only_original = {k: v for k, v in spec.args.items() if own.args.get(k, object()) != v}
        only_own = {k: v for k, v in own.args.items() if spec.args.get(k, object()) != v}
        assert (only_original, only_own) == ARG_DIFFERENCES.get(method_id, ({}, {})), method_id
        assert (spec.canonical() == own.canonical()) == (method_id not in ARG_DIFFERENCES), method_id
    same = {i for i in specs if i in OWN and specs[i].canonical() == OWN[i].canonical()}
    assert same == {
        *("nlp_wordnet_syn", "nlp_randword_delete", "nlp_randword_sub", "nlp_keyboard", "nlp_ocr"),
        *("nlp_randchar_ins", "nlp_randchar_del", "nlp_randchar_sub", "nlp_randchar_swap"),
    }


def test_original_notes_say_only_what_was_read_differently() -> None:
    catalogue = read_catalogue(ORIGINAL_FILE)
    prefix = f"catalogue {ORIGINAL_FILE}: "
    assert all(n.startswith(prefix + "method") for n in catalogue.notes)
    assert all("\n" not in n for n in catalogue.notes)
    # One note per change, naming every entry it applies to: the 14 TextAttack entries' dropped augmenter_kwargs
    # is one line, not 14.
    by_change = {n.split(": ", 2)[2]: n.split(": ", 2)[1].split(" ", 1)[1].split(", ") for n in catalogue.notes}
    ta = [i for i in ORIGINAL_KINDS if i.startswith("ta_")]
    assert by_change[AUGMENTER_KWARGS_NOTE] == ta
    assert len(catalogue.notes) == len(by_change)
    renamed = {ids[0]: change for change, ids in by_change.items() if change.startswith("kind ")}
    assert renamed["ta_char_rand_del"] == (
        "kind textattack.transformations.character_swap.CharacterSwap (random, delete) read as "
        "WordSwapRandomCharacterDeletion"
    )
    assert "CharacterSwap (random: false) read as WordSwapNeighboringCharacterSwap" in renamed["ta_char_neighbor"]
    assert "CharacterSwap (random) read as WordSwapRandomCharacterSubstitution" in renamed["ta_char_rand_swap"]
    assert "word_swap_morph.WordSwapMorph read as WordSwapInflections" in renamed["ta_word_swap_morph"]
    # A class read under its own name (only the module path dropped) is not a change: no "read as" note for it.
    assert "ta_wordswap_qwerty" not in renamed and "ta_wordswap_wordnet" not in renamed
    assert not any("read as WordSwapQWERTY" in n for n in catalogue.notes)
    assert by_change[
        "kept as written, but augshard's own catalogue entry uses constraints: [RepeatModification] because "
        "with TextAttack's default constraints (RepeatModification, StopwordModification) nothing is contracted"
    ] == ["ta_contraction"]
    unavailable = {ids[0]: change for change, ids in by_change.items() if change.startswith("will be unavailable")}
    assert "nlpaug's RandomWordAug has no 'insert' action" in unavailable["nlp_randword_insert"]
    assert "augshard does not run nlpaug's BackTranslationAug" in unavailable["nlp_backtranslation_de"]
    # Plain nlpaug entries read as written say nothing.
    named = {i for ids in by_change.values() for i in ids}
    assert named == set(ta) | {"nlp_randword_insert", "nlp_backtranslation_de"}


def test_unknown_keys_are_ignored_with_a_note_only_in_the_original_format(tmp_path: Path) -> None:
    original = _catalogue(
        tmp_path, "  - {id: k, lib: nlpaug, kind: nlpaug.augmenter.char.KeyboardAug, weight: 3, group: char}\n"
    )
    catalogue = read_catalogue(original)
    assert catalogue.specs["k"].kind == "KeyboardAug"
    assert catalogue.notes == (
        f"catalogue {original}: method k: ignored key(s) group, weight (augshard's catalogue has no such keys)",
    )
    own = _catalogue(tmp_path, "  - {id: k, lib: nlpaug, kind: KeyboardAug, weight: 3}\n", "own.yaml")
    with pytest.raises(ConfigError, match=r"own.yaml: method 'k': unknown key\(s\) weight \(allowed: "):
        read_catalogue(own)


def test_augmenter_kwargs_that_matter_become_args(tmp_path: Path) -> None:
    path = _catalogue(
        tmp_path,
        "  - {id: q, lib: textattack, kind: textattack.transformations.word_swap_qwerty.WordSwapQWERTY,\n"
        "     args: {augmenter_kwargs: {pct_words_to_swap: 0.2, transformations_per_example: 4, enable_x: true}}}\n",
    )
    catalogue = read_catalogue(path)
    assert catalogue.specs["q"].args == {"pct_words_to_swap": 0.2}
    assert catalogue.notes == (
        f"catalogue {path}: method q: ignored augmenter_kwargs.enable_x (augshard does not pass it to TextAttack's "
        "Augmenter)",
        f"catalogue {path}: method q: ignored augmenter_kwargs.transformations_per_example (augshard draws one "
        "candidate per seeded call)",
    )


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "{id: c, lib: textattack, kind: textattack.transformations.character_swap.CharacterSwap}",
            "method 'c': CharacterSwap needs 'random: true' or 'random: false' in args",
        ),
        (
            "{id: c, lib: textattack, kind: textattack.transformations.character_swap.CharacterSwap,"
            " args: {random: true, delete: true, insert: true}}",
            "method 'c': no TextAttack class for CharacterSwap with these flags (true flags may be: none; "
            "random, delete; random, insert; random)",
        ),
        (
            "{id: c, lib: textattack, kind: textattack.transformations.character_swap.CharacterSwap,"
            " args: {random: 'yes'}}",
            "method 'c': CharacterSwap arg 'random' must be true or false, got 'yes'",
        ),
        (
            "{id: k, lib: textattack, kind: nlpaug.augmenter.char.KeyboardAug}",
            "method 'k': kind 'nlpaug.augmenter.char.KeyboardAug' is not a textattack class name "
            "(expected textattack.<module>.<Class>)",
        ),
        (
            "{id: k, lib: nlpaug, kind: nlpaug..KeyboardAug}",
            "method 'k': kind 'nlpaug..KeyboardAug' is not a nlpaug class name",
        ),
        (
            "{id: q, lib: textattack, kind: textattack.transformations.WordSwapQWERTY, args: {augmenter_kwargs: 2}}",
            "method 'q': 'augmenter_kwargs' must be a mapping",
        ),
    ],
)
def test_malformed_original_entries_are_one_line_errors(tmp_path: Path, entry: str, message: str) -> None:
    path = _catalogue(tmp_path, f"  - {entry}\n")
    with pytest.raises(ConfigError) as info:
        load_catalogue(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_unsupported_names_what_no_library_here_runs() -> None:
    reason, fix = unsupported("nlpaug", "RandomWordAug", {"action": "insert"})
    assert reason == "nlpaug's RandomWordAug has no 'insert' action (it has substitute, swap, delete, crop)"
    assert "remove the entry" in fix
    assert unsupported("nlpaug", "RandomWordAug", {}) is None  # nlpaug's default action is delete
    assert unsupported("nlpaug", "RandomWordAug", {"action": "crop"}) is None
    assert unsupported("nlpaug", "BackTranslationAug", {})[0].startswith("augshard does not run nlpaug's Back")
    assert unsupported("textattack", "WordSwapQWERTY", {"action": "insert"}) is None


def test_original_methods_that_cannot_run_are_unavailable_with_a_reason() -> None:
    specs = _original()
    insert = check_method(specs["nlp_randword_insert"])
    assert not insert.ok
    assert insert.reason == "nlpaug's RandomWordAug has no 'insert' action (it has substitute, swap, delete, crop)"
    assert "'action'" in insert.fix
    back = check_method(specs["nlp_backtranslation_de"])
    assert not back.ok
    assert "BackTranslationAug" in back.reason and "downloaded by nlpaug at run time" in back.reason
    assert back.fix == "remove the entry from the method catalogue"


@pytest.mark.slow
def test_original_methods_augshard_runs_here_build_and_augment() -> None:
    specs = _original()
    statuses = {i: check_method(specs[i]) for i in sorted(RUNNABLE)}
    assert {i: s.reason for i, s in statuses.items() if not s.ok} == {}
    # PROBE holds no contractible pair; every other method changes it
    assert {i for i, s in statuses.items() if s.probe_output == PROBE} == {"ta_contraction"}


SENTENCES = [
    "I am sure that we do not know what the children will bring home from school tomorrow.",
    "The battery lasts all day, the screen is bright and sharp, but the shipping was slow.",
]


def _outputs(spec: MethodSpec, sentences: list[str] = SENTENCES) -> list[str | Exception]:
    return build_method(spec).augment(sentences * 2, [0, 1, 2, 3])


@pytest.mark.slow
@pytest.mark.parametrize("method_id", sorted(RUNNABLE & ARG_DIFFERENCES.keys() - {"ta_contraction"}))
def test_original_args_left_to_their_defaults_behave_as_augshards_written_out(method_id: str) -> None:
    assert method_id in ARG_DIFFERENCES
    assert _outputs(_original()[method_id]) == _outputs(OWN[method_id])


@pytest.mark.slow
def test_original_contraction_kept_as_written_contracts_nothing() -> None:
    contractible = ["I am sure that we do not know what they will bring home.", "It is late and the bus is not here."]
    original = _outputs(_original()["ta_contraction"], contractible)
    own = _outputs(OWN["ta_contraction"], contractible)
    assert original == contractible * 2
    assert all(o != s for o, s in zip(own, contractible * 2, strict=True)), own


# --- selection ------------------------------------------------------------------------------------------------


def _specs(*ids: str) -> dict[str, MethodSpec]:
    return {i: MethodSpec(id=i, lib="nlpaug", kind="KeyboardAug") for i in ids}


SPECS = _specs(
    "nlp_keyboard", "nlp_ocr", "nlp_cwe_sub_roberta", "ta_char_neighbor", "ta_char_rand_del", "ta_mlm_sub_roberta"
)


def test_none_and_all_select_the_whole_catalogue_sorted_naming_nothing() -> None:
    for include in (None, ("all",)):
        selection = resolve_selection(SPECS, include)
        assert selection.ids == tuple(sorted(SPECS))
        assert selection.specs == tuple(SPECS[i] for i in sorted(SPECS))
        assert selection.named == frozenset()


def test_glob_selects_matching_ids() -> None:
    assert resolve_selection(SPECS, ("nlp_*",)).ids == ("nlp_cwe_sub_roberta", "nlp_keyboard", "nlp_ocr")
    assert resolve_selection(SPECS, ("ta_char_*",)).ids == ("ta_char_neighbor", "ta_char_rand_del")
    assert resolve_selection(SPECS, ("*_roberta",)).ids == ("nlp_cwe_sub_roberta", "ta_mlm_sub_roberta")
    assert resolve_selection(SPECS, ("nlp_[ko]*",)).ids == ("nlp_keyboard", "nlp_ocr")


def test_glob_is_case_sensitive() -> None:
    with pytest.raises(MethodError, match="pattern 'NLP_\\*' matches no method"):
        resolve_selection(SPECS, ("NLP_*",))


def test_several_patterns_and_ids_select_each_method_once() -> None:
    selection = resolve_selection(SPECS, ("*_roberta", "nlp_*", "nlp_ocr", "nlp_ocr", "ta_mlm_sub_roberta"))
    assert selection.ids == ("nlp_cwe_sub_roberta", "nlp_keyboard", "nlp_ocr", "ta_mlm_sub_roberta")
    assert selection.named == frozenset({"nlp_ocr", "ta_mlm_sub_roberta"})


def test_exclude_by_id_and_by_pattern() -> None:
    assert resolve_selection(SPECS, None, ("*_roberta",)).ids == (
        "nlp_keyboard",
        "nlp_ocr",
        "ta_char_neighbor",
        "ta_char_rand_del",
    )
    selection = resolve_selection(SPECS, ("nlp_*", "nlp_ocr", "nlp_keyboard"), ("nlp_ocr", "*_roberta"))
    assert selection.ids == ("nlp_keyboard",)
    assert selection.named == frozenset({"nlp_keyboard"})  # an excluded id is not reported as named
    # excluding a catalogue method the include did not reach is no error
    assert resolve_selection(SPECS, ("nlp_ocr",), ("ta_*",)).ids == ("nlp_ocr",)


def test_explicit_ids_are_named_pattern_matches_are_not() -> None:
    selection = resolve_selection(SPECS, ("ta_char_neighbor", "nlp_*"))
    assert selection.ids == ("nlp_cwe_sub_roberta", "nlp_keyboard", "nlp_ocr", "ta_char_neighbor")
    assert selection.named == frozenset({"ta_char_neighbor"})
    assert resolve_selection(SPECS, ("all", "nlp_ocr")).named == frozenset({"nlp_ocr"})


def test_unknown_id_names_it_the_flag_and_where_to_look() -> None:
    with pytest.raises(MethodError) as info:
        resolve_selection(SPECS, ("nlp_ocr", "nlp_teleport", "ta_warp"), catalogue_path="conf/m.yaml")
    assert str(info.value) == (
        "unknown method id(s) nlp_teleport, ta_warp in --methods; see `augshard methods` or conf/m.yaml"
    )
    with pytest.raises(MethodError, match=r"^unknown method id\(s\) nlp_x in methods; see `augshard methods`$"):
        resolve_selection(SPECS, ("nlp_x",), where="methods")
    with pytest.raises(MethodError, match=r"^unknown method id\(s\) nlp_x in --exclude-methods; "):
        resolve_selection(SPECS, None, ("nlp_x",))


def test_pattern_or_exclude_matching_nothing_is_an_error() -> None:
    with pytest.raises(MethodError) as info:
        resolve_selection(SPECS, ("nlp_*", "bt_*"))
    assert str(info.value) == "--methods: pattern 'bt_*' matches no method in the catalogue"
    with pytest.raises(MethodError) as info:
        resolve_selection(SPECS, None, ("*_bert",))
    assert str(info.value) == "--exclude-methods: pattern '*_bert' matches no method in the catalogue"


def test_excluding_everything_selected_is_an_error() -> None:
    with pytest.raises(MethodError) as info:
        resolve_selection(SPECS, ("ta_char_*",), ("ta_*",))
    assert str(info.value) == "--exclude-methods ta_* leaves none of the methods --methods selects"
    with pytest.raises(MethodError, match="^--methods selects no method$"):
        resolve_selection(SPECS, ())


def test_select_keeps_its_contract() -> None:
    assert [s.id for s in select(SPECS, ("nlp_ocr", "nlp_keyboard"), "x.yaml")] == ["nlp_keyboard", "nlp_ocr"]
    assert [s.id for s in select(SPECS, None, "x.yaml")] == sorted(SPECS)
    with pytest.raises(MethodError, match=r"unknown method id\(s\) nlp_teleport in --methods; .* or x.yaml"):
        select(SPECS, ("nlp_teleport",), "x.yaml")


@pytest.mark.parametrize("value", ['"no"', '"false"', "0", "yes please"])
def test_requires_gpu_must_be_a_boolean(tmp_path: Path, value: str) -> None:
    """YAML reads `"no"` as a string, which Python would take for true: a GPU method nobody meant."""
    path = _catalogue(tmp_path, f"  - {{id: m, lib: nlpaug, kind: KeyboardAug, requires_gpu: {value}}}\n")
    with pytest.raises(ConfigError, match="'requires_gpu' must be true or false") as info:
        load_catalogue(path)
    assert "\n" not in str(info.value)
    path = _catalogue(tmp_path, "  - {id: m, lib: nlpaug, kind: KeyboardAug, requires_gpu: no}\n")  # YAML's false
    assert load_catalogue(path)["m"].requires_gpu is False


@pytest.mark.parametrize("cost", [".nan", ".inf", "-.inf"])
def test_a_cost_must_be_a_finite_positive_number(tmp_path: Path, cost: str) -> None:
    path = _catalogue(tmp_path, f"  - {{id: m, lib: nlpaug, kind: KeyboardAug, cost: {cost}}}\n")
    with pytest.raises(ConfigError, match="'cost' must be a positive number"):
        load_catalogue(path)
