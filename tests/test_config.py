"""Tests for augshard.core.config: defaults, YAML file and overrides, validation, fingerprint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from augshard.api import make_config
from augshard.core.config import RunConfig, auto_shards, load_config
from augshard.core.errors import ConfigError
from augshard.methods.catalogue import load_catalogue, select

REPO = Path(__file__).resolve().parents[1]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def empty_conf(tmp_path: Path) -> Path:
    """A config file with no settings at all, so load_config shows the built-in defaults."""
    return _write(tmp_path / "empty.yaml", "# nothing set here\n")


def _load(conf: Path, **overrides: object) -> RunConfig:
    overrides.setdefault("input", "data.csv")
    return load_config(str(conf), overrides)


# --- defaults and precedence ----------------------------------------------------------------------


def test_builtin_defaults(empty_conf: Path) -> None:
    cfg = _load(empty_conf)
    assert cfg.input == "data.csv"
    assert cfg.text_col == "text"
    assert cfg.evidence_col is None
    assert cfg.id_col is None
    assert cfg.num_shards is None  # auto: decided when the run is prepared
    assert cfg.variants_per_sample == 2
    assert cfg.quality_min_sim == 0.55
    assert cfg.quality_max_sim == 0.95
    assert cfg.quality_metric == "embedding"
    assert cfg.seed == 42
    assert cfg.combo_mode == "bounded_k"
    assert cfg.max_combo_size == 2
    assert cfg.methods is None
    assert cfg.shard_index is None
    assert cfg.keep_shards is False
    assert cfg.output_root == "data/processed/augsets"
    assert cfg.config_path == str(empty_conf)


def test_file_overrides_defaults_and_flags_override_file(tmp_path: Path) -> None:
    conf = _write(
        tmp_path / "run.yaml",
        "seed: 7\nnum_shards: 3\nquality_metric: char_ratio\nvariants_per_sample: 4\n"
        "methods: [m_b, m_a]\ntext_col: body\n",
    )
    cfg = _load(conf, seed=99, num_shards=None, variants_per_sample=None, text_col="review")
    assert cfg.seed == 99  # flag beats file
    assert cfg.text_col == "review"  # flag beats file
    assert cfg.num_shards == 3  # a None flag means "not given": the file's value stays
    assert cfg.variants_per_sample == 4
    assert cfg.quality_metric == "char_ratio"  # file beats default
    assert cfg.methods == ("m_b", "m_a")
    assert (cfg.quality_min_sim, cfg.quality_max_sim) == (0.40, 0.98)  # char_ratio's default when neither says


# --- each metric's default range ------------------------------------------------------------------


def test_each_metric_has_its_default_range_and_a_given_bound_wins(tmp_path: Path, empty_conf: Path) -> None:
    assert (RunConfig().quality_min_sim, RunConfig().quality_max_sim) == (0.55, 0.95)
    chars = RunConfig(quality_metric="char_ratio")
    assert (chars.quality_min_sim, chars.quality_max_sim) == (0.40, 0.98) and chars.default_range
    # One bound given: the other is still the metric's default.
    one = _load(empty_conf, quality_metric="char_ratio", quality_max_sim="0.9")
    assert (one.quality_min_sim, one.quality_max_sim) == (0.40, 0.9) and not one.default_range
    # A range written in the config file beats the metric's default, and a flag beats the file.
    conf = _write(tmp_path / "run.yaml", "quality_metric: char_ratio\nquality_min_sim: 0.5\nquality_max_sim: 0.97\n")
    assert (_load(conf).quality_min_sim, _load(conf).quality_max_sim) == (0.5, 0.97)
    assert _load(conf, quality_min_sim="0.6").quality_min_sim == 0.6
    # The range is part of what a combo's output depends on: a char_ratio run of the old range is not reused.
    old_range = RunConfig(input="x", quality_metric="char_ratio", quality_min_sim=0.55, quality_max_sim=0.95)
    assert RunConfig(input="x", quality_metric="char_ratio").fingerprint() != old_range.fingerprint()


def test_the_shipped_config_leaves_the_range_to_the_metric() -> None:
    shipped = yaml.safe_load((Path(__file__).resolve().parents[1] / "augshard" / "conf" / "augshard.yaml").read_text())
    assert "quality_min_sim" not in shipped and "quality_max_sim" not in shipped
    cfg = load_config(None, {"quality_metric": "char_ratio"})
    assert (cfg.quality_min_sim, cfg.quality_max_sim) == (0.40, 0.98)


def test_the_api_range_follows_a_changed_metric_unless_it_was_given() -> None:
    base = make_config(RunConfig(input="x.csv"))
    assert (base.quality_min_sim, base.quality_max_sim) == (0.55, 0.95)
    moved = make_config(base, quality_metric="char_ratio")
    assert (moved.quality_min_sim, moved.quality_max_sim) == (0.40, 0.98)
    kept = make_config(RunConfig(input="x.csv", quality_max_sim=0.9), quality_metric="char_ratio")
    assert (kept.quality_min_sim, kept.quality_max_sim) == (0.55, 0.9)


def test_hyphenated_keys_in_file_are_accepted(tmp_path: Path) -> None:
    conf = _write(tmp_path / "run.yaml", "num-shards: 2\nquality-min-sim: 0.3\n")
    cfg = _load(conf)
    assert cfg.num_shards == 2
    assert cfg.quality_min_sim == 0.3


def test_relative_input_resolves_against_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf_dir = tmp_path / "conf"
    conf_dir.mkdir()
    conf = _write(conf_dir / "run.yaml", "input: ../sample/reviews.csv\nmethods_config: methods.yaml\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(str(conf), {})
    assert Path(cfg.input).is_absolute()
    assert Path(cfg.input).resolve() == (tmp_path / "sample" / "reviews.csv").resolve()
    assert Path(cfg.methods_config).resolve() == (conf_dir / "methods.yaml").resolve()


def test_relative_config_path_and_relative_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "conf").mkdir()
    _write(tmp_path / "conf" / "run.yaml", "input: data/in.csv\n")
    monkeypatch.chdir(tmp_path)
    cfg = load_config("conf/run.yaml", {})
    assert Path(cfg.input) == (tmp_path / "conf" / "data" / "in.csv").resolve()


def test_shipped_config_found_from_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    cfg = load_config(None, {})
    assert Path(cfg.input).is_file()
    assert Path(cfg.input).name == "reviews.csv"
    assert cfg.methods == ("nlp_keyboard", "nlp_randchar_swap", "nlp_randword_delete", "nlp_wordnet_syn")


def test_absolute_input_in_file_and_relative_flag_are_kept(tmp_path: Path) -> None:
    absolute = tmp_path / "abs" / "data.csv"
    conf = _write(tmp_path / "run.yaml", f"input: {absolute}\n")
    assert load_config(str(conf), {}).input == str(absolute)
    # A flag is relative to where the user runs the command, not to the config file.
    assert load_config(str(conf), {"input": "rel/data.csv"}).input == "rel/data.csv"


def test_missing_config_file_is_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match="nope.yaml"):
        load_config(str(missing), {"input": "x.csv"})


# --- file problems --------------------------------------------------------------------------------


def test_unknown_setting_names_the_key(tmp_path: Path) -> None:
    conf = _write(tmp_path / "run.yaml", "seed: 1\nnum_shardz: 3\n")
    with pytest.raises(ConfigError, match="unknown setting 'num_shardz'") as info:
        _load(conf)
    assert str(conf) in str(info.value)


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    conf = _write(tmp_path / "bad.yaml", "seed: 1\nnum_shards: 2\nmethods: [a, b\ntext_col: text\n")
    with pytest.raises(ConfigError) as info:
        _load(conf)
    message = str(info.value)
    assert str(conf) in message
    assert "malformed YAML" in message
    assert "line 4" in message


def test_malformed_yaml_bad_indentation_line(tmp_path: Path) -> None:
    conf = _write(tmp_path / "bad.yaml", "seed: 1\n  num_shards: 2\n")
    with pytest.raises(ConfigError) as info:
        _load(conf)
    assert str(conf) in str(info.value)
    assert "line 2" in str(info.value)


def test_top_level_list_is_rejected(tmp_path: Path) -> None:
    conf = _write(tmp_path / "list.yaml", "- seed\n- 1\n")
    with pytest.raises(ConfigError, match="mapping"):
        _load(conf)


# --- validation -----------------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["quality_min_sim", "quality_max_sim"])
def test_threshold_not_numeric(empty_conf: Path, key: str) -> None:
    flag = "--" + key.replace("_", "-")
    with pytest.raises(ConfigError, match=flag):
        _load(empty_conf, **{key: "high"})


@pytest.mark.parametrize(
    ("key", "value"), [("quality_min_sim", -0.1), ("quality_max_sim", 1.5), ("quality_min_sim", 2)]
)
def test_threshold_out_of_range(empty_conf: Path, key: str, value: float) -> None:
    with pytest.raises(ConfigError, match=r"within \[0, 1\]"):
        _load(empty_conf, **{key: value})


def test_threshold_nan_rejected(empty_conf: Path) -> None:
    with pytest.raises(ConfigError, match="--quality-min-sim"):
        _load(empty_conf, quality_min_sim="nan")


def test_threshold_strings_from_yaml_are_numbers(tmp_path: Path) -> None:
    conf = _write(tmp_path / "run.yaml", "quality_min_sim: '0.25'\nquality_max_sim: 1\n")
    cfg = _load(conf)
    assert cfg.quality_min_sim == 0.25
    assert cfg.quality_max_sim == 1.0
    assert isinstance(cfg.quality_max_sim, float)


def test_min_greater_than_max(empty_conf: Path) -> None:
    with pytest.raises(ConfigError, match="greater than"):
        _load(empty_conf, quality_min_sim=0.9, quality_max_sim=0.8)


def test_min_equal_max_is_allowed(empty_conf: Path) -> None:
    cfg = _load(empty_conf, quality_min_sim=0.7, quality_max_sim=0.7)
    assert cfg.quality_min_sim == cfg.quality_max_sim == 0.7


@pytest.mark.parametrize("value", [0, -1, -7, "0"])
def test_num_shards_below_one(empty_conf: Path, value: object) -> None:
    with pytest.raises(ConfigError, match="--num-shards must be at least 1"):
        _load(empty_conf, num_shards=value)


@pytest.mark.parametrize("value", ["auto", "AUTO", " Auto "])
def test_num_shards_auto_is_decided_by_the_run(empty_conf: Path, value: str) -> None:
    assert _load(empty_conf, num_shards=value).num_shards is None


def test_num_shards_auto_in_config_file(tmp_path: Path) -> None:
    conf = _write(tmp_path / "run.yaml", "num_shards: auto\n")
    assert _load(conf).num_shards is None


def test_auto_shards_is_one_per_core_but_no_more_than_the_combos_to_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert auto_shards(10) == (2, "auto: 2 CPU cores")
    assert auto_shards(1) == (1, "auto: 2 CPU cores, 1 combo to run")
    assert auto_shards(0)[0] == 1  # a rerun with nothing left still has a shard to settle the manifest
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert auto_shards(253) == (16, "auto: 16 CPU cores")


def test_shard_index_needs_an_explicit_shard_count(empty_conf: Path) -> None:
    with pytest.raises(ConfigError, match="--shard-index needs an explicit --num-shards"):
        _load(empty_conf, shard_index=0)


def test_original_tool_names_are_accepted(empty_conf: Path) -> None:
    cfg = _load(empty_conf, combo_mode="singletons", save_format="csv", exclude_methods="ta_*, nlp_ocr")
    assert cfg.combo_mode == "single" and cfg.save_format == "csv"
    assert cfg.exclude_methods == ("ta_*", "nlp_ocr")
    assert cfg.fingerprint() != _load(empty_conf, combo_mode="single").fingerprint()  # dataset.csv is an output
    with pytest.raises(ConfigError, match="--save-format must be one of parquet, csv"):
        _load(empty_conf, save_format="xlsx")


@pytest.mark.parametrize("value", ["many", 2.5, True])
def test_num_shards_not_an_integer(empty_conf: Path, value: object) -> None:
    with pytest.raises(ConfigError, match="--num-shards"):
        _load(empty_conf, num_shards=value)


def test_num_shards_string_number(empty_conf: Path) -> None:
    assert _load(empty_conf, num_shards="4").num_shards == 4


@pytest.mark.parametrize("value", [0, -2])
def test_variants_below_one(empty_conf: Path, value: int) -> None:
    with pytest.raises(ConfigError, match="--variants-per-sample must be at least 1"):
        _load(empty_conf, variants_per_sample=value)


@pytest.mark.parametrize("index", [3, 4, -1])
def test_shard_index_out_of_range(empty_conf: Path, index: int) -> None:
    with pytest.raises(ConfigError, match=r"--shard-index must be in 0\.\.2"):
        _load(empty_conf, num_shards=3, shard_index=index)


def test_shard_index_in_range(empty_conf: Path) -> None:
    assert _load(empty_conf, num_shards=3, shard_index=2).shard_index == 2


@pytest.mark.parametrize("methods", ["a,b,a", ["a", "b", "a"], ("a", "b", "a")])
def test_duplicate_methods(empty_conf: Path, methods: object) -> None:
    with pytest.raises(ConfigError, match="--methods names a more than once"):
        _load(empty_conf, methods=methods)


def test_methods_string_is_split_and_stripped(empty_conf: Path) -> None:
    assert _load(empty_conf, methods=" a , b,,c ").methods == ("a", "b", "c")


def test_empty_methods(empty_conf: Path) -> None:
    with pytest.raises(ConfigError, match="--methods is empty"):
        _load(empty_conf, methods=" , ")


def test_no_input(empty_conf: Path) -> None:
    with pytest.raises(ConfigError, match="no input dataset"):
        load_config(str(empty_conf), {})


@pytest.mark.parametrize(("key", "value"), [("quality_metric", "bleu"), ("combo_mode", "pairs")])
def test_unknown_choice(empty_conf: Path, key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=value):
        _load(empty_conf, **{key: value})


# --- fingerprint ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"seed": 43},
        {"quality_min_sim": 0.5},
        {"quality_max_sim": 0.9},
        {"quality_metric": "char_ratio"},
        {"variants_per_sample": 3},
        {"text_col": "body"},
    ],
)
def test_fingerprint_changes_with_output_settings(empty_conf: Path, change: dict) -> None:
    base = _load(empty_conf)
    assert _load(empty_conf, **change).fingerprint() != base.fingerprint()


@pytest.mark.parametrize(
    "change",
    [
        {"num_shards": 2},
        {"num_shards": 11},
        {"output_root": "/elsewhere/out"},
        {"cache_dir": "/elsewhere/cache"},
        {"log_dir": "/elsewhere/logs"},
        {"num_shards": 3, "shard_index": 1},
        {"keep_shards": True},
        {"input": "other.csv"},
    ],
)
def test_fingerprint_ignores_where_and_how_many(empty_conf: Path, change: dict) -> None:
    base = _load(empty_conf)
    assert _load(empty_conf, **change).fingerprint() == base.fingerprint()


def test_fingerprint_is_stable_and_short(empty_conf: Path) -> None:
    a, b = _load(empty_conf), _load(empty_conf)
    assert a.fingerprint() == b.fingerprint()
    assert len(a.fingerprint()) == 16
    int(a.fingerprint(), 16)


def test_a_catalogue_given_alone_runs_every_entry_it_has() -> None:
    """`--methods-yaml FILE` (the original tool's flag) with no `--methods`: every entry of FILE, as the original ran
    them, not the config file's subset of the shipped catalogue; `--methods` still narrows it."""
    original = REPO / "tests/fixtures/original_augment_methods.yaml"
    shipped = load_config(None, {})
    assert shipped.methods is not None and len(shipped.methods) == 4  # the config file's quick subset
    alone = load_config(None, {"methods_config": str(original)})
    assert alone.methods is None
    ids = [e["id"] for e in yaml.safe_load(original.read_text(encoding="utf-8"))["methods"]]
    assert sorted(s.id for s in select(load_catalogue(original), alone.methods, str(original))) == sorted(ids)
    assert len(ids) == 28
    narrowed = load_config(None, {"methods_config": str(original), "methods": "nlp_keyboard,nlp_ocr"})
    assert narrowed.methods == ("nlp_keyboard", "nlp_ocr")
