"""The declared settings (augshard/core/settings.py): every setting of a command is one declaration, and the places
derived from it (the CLI's options, the API's explicit keywords, the fingerprint) agree with it."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from pathlib import Path

import pytest
import typer
from helpers import run_cli

import augshard
import augshard.api
from augshard.core.config import NOT_IN_FINGERPRINT, RUN, RunConfig
from augshard.core.errors import ConfigError, OutputError
from augshard.core.settings import REQUIRED
from augshard.evaluation.options import EVALUATE, EvaluateOptions
from augshard.exporting.model import EXPORT, ExportOptions

# RunConfig.fingerprint() of these configurations, as main computed them before the settings were declared: every
# finished combo's meta.json and manifest carry it, so a change here makes every earlier output look stale.
PINNED = {
    "defaults": ({}, "049378f7731c6692"),
    "each_step": ({"quality_scope": "each-step"}, "9cd24f70d04a6f95"),
    "char_ratio": ({"quality_metric": "char_ratio"}, "413fba9ddc0c3d0d"),
    "char_ratio_label": ({"quality_metric": "char_ratio", "label_col": "label"}, "ed469434d23b57ca"),
    "char_ratio_onnx_cuda": (
        {"quality_metric": "char_ratio", "embedding_backend": "onnx", "device": "cuda"},
        "413fba9ddc0c3d0d",
    ),
    "torch_cpu": ({"embedding_backend": "torch", "device": "cpu"}, "ce7348f0a3b6cfad"),
    "torch_cuda1": ({"embedding_backend": "torch", "device": "cuda:1"}, "5b624e2ad03f85aa"),
    "onnx_auto": ({"embedding_backend": "onnx"}, "f4cc003175cb40e0"),
    "none_label_torch_cuda": (
        {"quality_metric": "none", "label_col": "y", "embedding_backend": "torch", "device": "cuda"},
        "ffed2055e727a042",
    ),
    "csv_vectors": ({"save_format": "csv", "keep_vectors": True}, "87d6a0a3a9148d4b"),
    "columns_and_numbers": (
        {
            "text_col": "body",
            "evidence_col": "ev",
            "id_col": "id",
            "variants_per_sample": 5,
            "quality_min_sim": 0.6,
            "quality_max_sim": 0.9,
            "seed": 7,
            "max_candidates_per_variant": 4,
            "chunk_size": 128,
            "embedding_model": "models/mini",
        },
        "4f70ceb738db1cbf",
    ),  # fmt: skip
    "where_and_how": (  # none of these changes an output: the defaults' fingerprint
        {
            "input": "in.csv",
            "output_root": "o",
            "cache_dir": "c",
            "log_dir": "l",
            "num_shards": 3,
            "combo_mode": "all",
            "max_combo_size": 3,
            "methods": ("a",),
            "exclude_methods": ("b",),
            "force": True,
            "steal": False,
            "gpu_slots": 2,
            "max_retries": 0,
            "executor": "dask",
            "scheduler": "tcp://x:1",
            "embedding_batch_size": 8,
            "disk_cache": "d.db",
            "criterion_col": "c",
            "calibrate": "x.json",
            "shard_index": 1,
            "keep_shards": True,
            "output_name": "m.csv",
            "confirm_powerset": True,
        },
        "049378f7731c6692",
    ),  # fmt: skip
}


@pytest.mark.parametrize("case", sorted(PINNED))
def test_fingerprints_of_earlier_configurations_are_unchanged(case: str) -> None:
    settings, expected = PINNED[case]
    assert RunConfig(**settings).fingerprint() == expected


def test_every_run_setting_either_enters_the_fingerprint_or_is_declared_not_to() -> None:
    """A new setting that changes outputs declares its rule (`unless_default` keeps earlier fingerprints); one that
    does not is listed in NOT_IN_FINGERPRINT. Forgetting both fails here."""
    fields = [f.name for f in dataclasses.fields(RunConfig) if f.name not in ("config_path", "origin")]
    assert list(RUN.names) == fields
    undeclared = [s.name for s in RUN if s.fingerprint is None and s.name not in NOT_IN_FINGERPRINT]
    both = [s.name for s in RUN if s.fingerprint is not None and s.name in NOT_IN_FINGERPRINT]
    assert undeclared == [] and both == []
    assert set(NOT_IN_FINGERPRINT) <= set(RUN.names)


def test_a_record_field_without_a_declaration_is_refused_at_once() -> None:
    from augshard.core.settings import Table, setting

    @dataclasses.dataclass(frozen=True)
    class Options:
        folds: int = setting(5, "Folds.", low=2)
        stray: int = 3

    with pytest.raises(TypeError, match="Options.stray is not declared with setting"):
        Table.of(Options, "option")


def test_help_renders_the_declared_choices_and_default() -> None:
    assert RUN["variants_per_sample"].help_text == "Variants per row and combo. [2]"
    assert RUN["quality_scope"].help_text.startswith("final | each-step: ")
    assert RUN["quality_scope"].help_text.endswith("[final]")
    assert RUN["num_shards"].help_text.endswith("[auto]")
    assert "[" not in RUN["force"].help_text  # a flag shows no default


def test_the_declared_constraints_are_one_line_naming_the_setting() -> None:
    from augshard.core.config import validate

    cfg = RunConfig(input="x.csv")
    cases = {
        "--gpu-slots must be at least 1, got 0": {"gpu_slots": 0},
        "--max-retries must be at least 0, got -1": {"max_retries": -1},
        "chunk_size must be at least 1, got 0": {"chunk_size": 0},
        "--combo-mode must be one of single, bounded_k, all (or singletons), got 'pairs'": {"combo_mode": "pairs"},
        "setting 'text_col' must be a string, got 5": {"text_col": 5},
        "--text-col must name a column": {"text_col": ""},
    }
    for message, change in cases.items():
        with pytest.raises(ConfigError) as info:
            validate(dataclasses.replace(cfg, **change))
        assert str(info.value) == message


# --- the places derived from the tables --------------------------------------------------------------------------

TABLES = {"make_config": RUN, "plan": RUN, "run": RUN, "export": EXPORT, "evaluate": EVALUATE}
# Each API function's parameters that are not settings of its table.
NOT_SETTINGS = {"make_config": {"config", "split"}, "plan": {"config", "split", "estimate"},
                "run": {"config", "on_progress", "progress", "split"},
                "export": {"best", "min_gain", "by_features"}, "evaluate": {"on_progress"}}  # fmt: skip
# Each command's options that are not settings of its table.
COMMAND_ONLY = {
    "run": {"--config", "--dry-run", "--no-live", "--calibrated", "--global-dedupe", "--format", "--no-estimate"},
    "export": {"--config", "--best", "--min-gain", "--by-features", "--format", "--include-originals"},
    "evaluate": {"--config", "--all", "--format", "--train-size", "--class"},  # how the result is shown
}


@pytest.mark.parametrize("name", sorted(TABLES))
def test_each_api_function_takes_its_settings_as_explicit_keywords(name: str) -> None:
    """Every setting is a named parameter (a notebook completes it), None unless the setting has no default, and
    every parameter is a setting or one of the function's own: no `**settings`."""
    table, params = TABLES[name], inspect.signature(getattr(augshard.api, name)).parameters
    assert not [p for p in params.values() if p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    assert set(params) - NOT_SETTINGS[name] == set(table.names)
    for s in table:
        assert params[s.name].default is (inspect.Parameter.empty if s.default is REQUIRED else None), s.name
        assert s.name in ("to", "label_col", "output_root") or params[s.name].kind is params[s.name].KEYWORD_ONLY


def _options(command: str) -> dict[tuple[str, ...], inspect.Parameter]:
    """The Typer options of a command's function, by their flags."""
    fn = getattr(importlib.import_module(f"augshard.cli.{command}"), command)
    params = inspect.signature(fn).parameters.values()
    return {tuple(p.default.param_decls): p for p in params if isinstance(p.default, typer.models.OptionInfo)}


@pytest.mark.parametrize("command", sorted(COMMAND_ONLY))
def test_each_command_has_one_option_per_setting_as_declared(command: str) -> None:
    """An option per setting with flags (and a hidden one per old spelling), with the declared help and type:
    integers are int (a count that may be 'auto' is read as text), numbers float, flags bool, a repeatable flag a
    list."""
    table, options = TABLES[command], _options(command)
    flags = {f for decls in options for f in decls}
    assert flags - COMMAND_ONLY[command] == {f for s in table for f in (*s.flags, *s.old_flags)}
    for s in (s for s in table if s.flags):
        p = options[s.flags]
        assert p.default.help == s.help_text, s.name
        assert p.annotation == ("str" if s.auto else "list[str]" if s.repeatable else s.base.__name__), s.name
        if s.old_flags:
            assert options[s.old_flags].default.hidden


def test_the_records_fields_are_their_tables() -> None:
    assert [f.name for f in dataclasses.fields(ExportOptions)] == [*EXPORT.names, "chosen_by"]
    assert [f.name for f in dataclasses.fields(EvaluateOptions)] == list(EVALUATE.names)
    assert ExportOptions(to=Path("x")).rows_per_file == EXPORT["rows_per_file"].default == 500_000


def test_a_keyword_unknown_or_old_is_named_as_the_table_says(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown setting 'num_shard' \\(did you mean 'num_shards'\\?\\)"):
        augshard.api.make_config(num_shard=2)
    with pytest.raises(ConfigError, match="unknown evaluate option 'fold' \\(did you mean 'folds'\\?\\)"):
        augshard.evaluate("label", tmp_path, fold=2)
    old = pytest.warns(FutureWarning, match=r"augshard.export\(shard_size=...\) is now rows_per_file")
    with old, pytest.raises(OutputError, match="no finished run"):
        augshard.export(tmp_path / "x", tmp_path / "run", shard_size=7)
    with pytest.raises(ConfigError, match="give rows_per_file only \\(shard_size is its old name\\)"):
        augshard.export(tmp_path / "x", tmp_path, shard_size=7, rows_per_file=7)


def test_a_bad_number_on_any_command_is_one_line_and_exit_2(tmp_path: Path) -> None:
    for args, message in (
        (("run", "--max-retries", "two"), "--max-retries: expected an integer, got 'two'"),
        (("export", "--to", "x", "--near-threshold", "high"), "--near-threshold: expected a number, got 'high'"),
        (("evaluate", "--label-col", "label", "--workers", "many"), "--workers: expected an integer, got 'many'"),
        (("evaluate", "--label-col", "label", "--num-shards", "many"), "--workers: expected an integer, got 'many'"),
    ):
        proc = run_cli(*args, cwd=tmp_path)
        assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [f"error: {message}"], proc.stderr
    assert list(tmp_path.iterdir()) == []
