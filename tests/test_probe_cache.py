"""The probe cache: a rerun probes no method it already knows, available or not; a changed entry is probed alone."""

from __future__ import annotations

import json
from pathlib import Path

from helpers import run_cli, sample_rows, write_csv

from augshard.methods import MethodSpec
from augshard.methods.probes import machine_context, probe_key

CATALOGUE = """
methods:
  - {id: nlp_keyboard, lib: nlpaug, kind: KeyboardAug, args: {aug_char_min: 1, aug_char_p: 0.05}}
  - {id: nlp_randchar_swap, lib: nlpaug, kind: RandomCharAug, args: {action: swap, aug_char_min: 1, aug_char_p: 0.06}}
  - {id: nlp_randword_insert, lib: nlpaug, kind: RandomWordAug, args: {action: insert}}
"""


def probed(stderr: str) -> list[str]:
    """The ids the one 'probing ...' note names (none when nothing was probed)."""
    lines = [ln for ln in stderr.splitlines() if "probing" in ln]
    assert len(lines) <= 1, stderr
    return lines[0].rsplit(": ", 1)[1].split(", ") if lines else []


def test_a_warm_rerun_probes_nothing_and_a_changed_entry_is_probed_alone(tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "probes.json"
    env = {"AUGSHARD_PROBE_CACHE": str(cache)}
    (tmp_path / "methods.yaml").write_text(CATALOGUE, encoding="utf-8")
    methods = ("methods", "--methods-config", "methods.yaml", "--format", "json")

    cold = run_cli(*methods, cwd=tmp_path, env=env)
    assert cold.returncode == 0, cold.stderr
    # An action its class lacks is the registry's to say: that method is never built, probed or cached.
    assert probed(cold.stderr) == ["nlp_keyboard", "nlp_randchar_swap"]
    records = {r["id"]: r for r in json.loads(cold.stdout)["methods"]}
    assert records["nlp_keyboard"]["status"] == "ok"
    assert records["nlp_randword_insert"]["status"] == "unavailable"
    assert "no 'insert' action" in records["nlp_randword_insert"]["reason"]
    stored = json.loads(cache.read_text(encoding="utf-8"))["probes"]
    assert sorted((p["id"], p["ok"]) for p in stored.values()) == [("nlp_keyboard", True), ("nlp_randchar_swap", True)]

    warm = run_cli(*methods, cwd=tmp_path, env=env)
    assert warm.returncode == 0, warm.stderr
    assert probed(warm.stderr) == []
    assert json.loads(warm.stdout) == json.loads(cold.stdout)  # the unavailable one keeps its reason and fix

    # The run's checks read the same cache: nothing to probe for a dry run either.
    write_csv(tmp_path / "in.csv", sample_rows(6))
    dry = run_cli("run", "--dry-run", "--input", "in.csv", "--text-col", "text", "--methods-config", "methods.yaml",
                  "--methods", "nlp_*", "--quality-metric", "none", cwd=tmp_path, env=env)  # fmt: skip
    assert dry.returncode == 0, dry.stderr
    assert probed(dry.stderr) == [] and "warning: method nlp_randword_insert is unavailable" in dry.stderr

    changed = CATALOGUE.replace("aug_char_p: 0.05", "aug_char_p: 0.2")
    (tmp_path / "methods.yaml").write_text(changed, encoding="utf-8")
    one = run_cli(*methods, cwd=tmp_path, env=env)
    assert one.returncode == 0, one.stderr
    assert probed(one.stderr) == ["nlp_keyboard"]
    again = run_cli(*methods, cwd=tmp_path, env=env)
    assert probed(again.stderr) == []


def test_a_model_put_in_place_changes_the_methods_key(tmp_path: Path) -> None:
    model = tmp_path / "model"
    spec = MethodSpec("cwe", "nlpaug", "ContextualWordEmbsAug", model_path=str(model))
    keyboard = MethodSpec("kb", "nlpaug", "KeyboardAug")
    context = machine_context()
    before = probe_key(spec, context), probe_key(keyboard, context)
    model.mkdir()
    (model / "config.json").write_text("{}", encoding="utf-8")
    after = probe_key(spec, context), probe_key(keyboard, context)
    assert before[0] != after[0]
    assert before[1] == after[1]  # a method that reads no model keeps its probe
    assert probe_key(spec, context) == after[0]  # nothing changed: the same key
