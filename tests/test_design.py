"""The house as docs/design.md draws it: every module on the map, no import circle, the project's imports on top."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "augshard"
# Function-local project imports that stay, each for a heavy third-party library its module imports.
LAZY_ON_PURPOSE = {
    ("augshard.runner.executors", "augshard.runner.dask_plugin")
}  # dask_plugin imports distributed (0.4 s)


def modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def project_imports(name: str, path: Path, known: dict[str, Path]) -> list[tuple[str, bool]]:
    """(imported module, whether the import sits inside a function or a TYPE_CHECKING block) for each import."""
    found: list[tuple[str, bool]] = []

    def target(node: ast.ImportFrom) -> list[str]:
        base = node.module or ""
        if node.level:
            pkg = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
            base = ".".join(pkg[: len(pkg) - node.level + 1] + ([node.module] if node.module else []))
        subs = [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in known]
        return subs or [base]

    def visit(node: ast.AST, hidden: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = hidden or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                inner = True
            if isinstance(child, ast.Import):
                found.extend((a.name, hidden) for a in child.names if a.name.split(".")[0] == "augshard")
            elif isinstance(child, ast.ImportFrom) and (child.level or (child.module or "").startswith("augshard")):
                found.extend((t, hidden) for t in target(child))
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return found


def test_every_module_is_on_the_design_map() -> None:
    design = (REPO / "docs" / "design.md").read_text(encoding="utf-8")
    missing = sorted(
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if path.name not in ("__init__.py", "__main__.py") and f"`{path.name}`" not in design
    )
    assert missing == []


def test_no_import_circle_and_project_imports_on_top() -> None:
    known = modules()
    edges: dict[str, set[str]] = {}
    local = []
    for name, path in known.items():
        for target, hidden in project_imports(name, path, known):
            while target not in known and "." in target:
                target = target.rsplit(".", 1)[0]
            if target == name or target not in known:
                continue
            edges.setdefault(name, set()).add(target)
            if hidden and (name, target) not in LAZY_ON_PURPOSE:
                local.append(f"{name} -> {target}")
    assert local == []  # a project import inside a function (or TYPE_CHECKING) hides a room's real dependency

    # Type-only imports count: a circle through a TYPE_CHECKING block is still a circle of the design.
    circles = []
    for start in sorted(edges):
        stack, seen = [(start, [start])], {start}
        while stack:
            node, path = stack.pop()
            for nxt in sorted(edges.get(node, ())):
                if nxt == start:
                    circles.append(" -> ".join([*path, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    assert circles == []


def test_the_top_of_the_package_is_its_table_of_contents() -> None:
    """At most 12 rooms (modules and sub-packages) at the top of augshard/, data folders and the two entry files
    aside, and each sub-package says its one job in its docstring and is named in docs/design.md."""
    design = (REPO / "docs" / "design.md").read_text(encoding="utf-8")
    data = {"conf", "sample", "__pycache__"}
    rooms = sorted(
        p.name
        for p in PACKAGE.iterdir()
        if (p.is_dir() and p.name not in data) or (p.suffix == ".py" and p.name not in ("__init__.py", "__main__.py"))
    )
    assert len(rooms) <= 12, rooms
    for room in rooms:
        if (PACKAGE / room).is_dir():
            assert (PACKAGE / room / "__init__.py").is_file(), room
            assert ast.get_docstring(ast.parse((PACKAGE / room / "__init__.py").read_text(encoding="utf-8"))), room
            assert f"| `{room}/` |" in design, room


def test_import_augshard_loads_at_most_six_of_its_modules() -> None:
    """`import augshard` names the API lazily: none of the rooms is imported until a public name is used."""
    import subprocess
    import sys

    code = (
        "import sys, augshard; print(sorted(m for m in sys.modules if m == 'augshard' or m.startswith('augshard.'))); "
        "augshard.run; augshard.RunConfig; augshard.ComboOutcome; print('ok', augshard.evaluate.__module__)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    loaded, used = proc.stdout.splitlines()
    assert len(ast.literal_eval(loaded)) <= 6, loaded
    assert used == "ok augshard.api"


def test_no_module_is_over_450_lines() -> None:
    """A module that grows two jobs is split along the line docs/design.md draws."""
    long = {
        str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 450
    }
    assert long == {}


def test_no_module_runs_as_main_and_is_also_imported() -> None:
    """A module started with `-m` (a Dask shard's process, prepare's NLTK child) is imported by nothing: runpy would
    otherwise execute it a second time beside the imported copy."""
    started = {"augshard.runner.shard_process", "augshard.methods.nltk_child"}
    known = modules()
    importers = sorted(
        f"{name} -> {target}"
        for name, path in known.items()
        for target, _hidden in project_imports(name, path, known)
        if target in started
    )
    assert importers == []
    for module in started:
        assert f'"{module}"' in "".join(p.read_text(encoding="utf-8") for p in PACKAGE.rglob("*.py")), module


# --- documents are read typed -------------------------------------------------------------------------------------
# The JSON documents augshard writes and the API returns, each a typed value; only the module that defines one reads
# it by string key (its `from_json`). Their keys: every field of these records and every key their JSON holds.
DOCUMENTS = {
    "augshard/runner/dry_run.py": ("RunPlan", "ComboPlan"),
    "augshard/runner/summary.py": ("RunDocument", "ShardRow", "Failure", "Crash", "LowYield", "LabelSummary",
                                   "Unavailable"),
    "augshard/exporting/model.py": ("ExportFacts", "ExportedCombo", "Dropped", "ExportSettings", "MethodClass",
                                    "ExportLabelCheck", "LeftOut", "NotRun", "SkippedRow", "InputFacts", "ClassLabel"),
    "augshard/evaluation/document.py": ("EvaluationDocument", "Source", "InputRef", "Scope", "Protocol",
                                        "ConfirmDesign", "ConfirmStage", "Section", "Baseline", "Power", "Row",
                                        "MethodEffect", "GainStats", "Spread"),
}  # fmt: skip
NOT_YET_TYPED: tuple[str, ...] = ()  # files that read a document by key until it is typed: none left
# String-key reads of dicts that are not these documents but share a key with them: (file or folder, optionally
# "::function", what is read or "*") -> why.
OTHER_DICTS = {
    ("augshard/api.py", "options"): "export's and evaluate's keyword arguments",
    ("augshard/", "RUN"): "the run's settings table (core/settings.py), looked up by setting name",
    ("augshard/", "EXPORT"): "export's settings table, looked up by setting name",
    ("augshard/", "EVALUATE"): "evaluate's settings table, looked up by setting name",
    ("augshard/cli/catalogue.py", "r"): "`methods`' own records of each method's status",
    ("augshard/core/config.py", "file_values"): "conf/augshard.yaml",
    ("augshard/core/config.py", "out"): "conf/augshard.yaml's settings",
    ("augshard/core/config.py", "spec"): "conf/augshard.yaml's input",
    ("augshard/evaluation/scoring.py", "spec"): "the sentence encoder's spec, evaluate's own (model, backend, device)",
    ("augshard/events/monitor.py", "status_document(statuses, now)"): "`monitor --format json`, defined there",
    ("augshard/exporting/card.py::_class_of", "doc"): "a method's canonical spec (meta.json's method_specs)",
    ("augshard/methods/", "*"): "the method catalogue (YAML), the probe cache, a method's arguments",
    ("augshard/runner/job.py", "doc"): "ShardJob's and ShardResult's JSON, defined there",
    ("augshard/shard/encoders.py", "*"): "sentence-transformers' modules.json",
    ("augshard/storage/meta.py", "*"): "meta.json, defined there",
    ("augshard/storage/outcome.py", "fields"): "a manifest row's keyword arguments",
    ("augshard/storage/outputs.py", "doc"): "meta.json read raw for the input it names",
    ("augshard/storage/outputs.py", "source"): "meta.json's source",
}


def document_keys() -> set[str]:
    import dataclasses
    import importlib

    from augshard.core.config import RunConfig
    from augshard.exporting.model import _JSON_KEYS
    from augshard.runner.dry_run import RunPlan

    keys = set(_JSON_KEYS.values())
    for path, names in DOCUMENTS.items():
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        keys |= {f.name for name in names for f in dataclasses.fields(getattr(module, name))}
    todo = [RunPlan("fp", 1, "", (), {}, 0, {}, (), RunConfig()).to_json()]  # its keys that are no field
    while todo:
        value = todo.pop()
        if isinstance(value, dict):
            keys |= set(value)
            todo += value.values()
    return keys


def string_key_reads(source: str, keys: set[str]) -> list[tuple[int, str, str, str]]:
    """(line, what is read, key, the function it is in) of every `x["key"]` and `x.get("key")` read whose key is a
    document's."""
    tree = ast.parse(source)
    within = {
        inner: node.name for node in ast.walk(tree) if isinstance(node, ast.FunctionDef) for inner in ast.walk(node)
    }  # the innermost function wins: ast.walk visits outer functions first
    found = []
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and isinstance(node.slice, ast.Constant):
            key, read = node.slice.value, node.value
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
              and node.args and isinstance(node.args[0], ast.Constant)):  # fmt: skip
            key, read = node.args[0].value, node.func.value
        if isinstance(key, str) and key in keys:
            found.append((node.lineno, ast.unparse(read), key, within.get(node, "")))
    return sorted(found)


def document_reads(path: str, source: str, keys: set[str]) -> list[str]:
    """The string-key reads of a document in `path` (relative to the repository) that no exception allows."""
    if path in DOCUMENTS or path.startswith(NOT_YET_TYPED):
        return []
    return [
        f"{path}:{line}: {read}[{key!r}]"
        for line, read, key, function in string_key_reads(source, keys)
        if not any(_allows(where, what, path, read, function) for where, what in OTHER_DICTS)
    ]


def _allows(where: str, what: str, path: str, read: str, function: str) -> bool:
    folder, _, scope = where.partition("::")
    return path.startswith(folder) and scope in ("", function) and what in ("*", read)


def test_documents_are_read_typed() -> None:
    """The plan, the run document and the export facts are read through their typed values outside their modules,
    never as dicts by string key (a dict read in three places drifts)."""
    keys = document_keys()
    reads = [
        read
        for path in sorted(PACKAGE.rglob("*.py"))
        for read in document_reads(str(path.relative_to(REPO)), path.read_text(encoding="utf-8"), keys)
    ]
    assert reads == []
    planted = 'doc = plan.to_json()\nrows = [c["combo_dir"] for c in doc["combos"]]\nkept = options.get("combos")\n'
    assert document_reads("augshard/cli/run.py", planted, keys) == [
        "augshard/cli/run.py:2: c['combo_dir']",
        "augshard/cli/run.py:2: doc['combos']",
        "augshard/cli/run.py:3: options['combos']",
    ]
    # In api.py, `options` is export's keyword arguments: that read is allowed there, and only that one.
    assert document_reads("augshard/api.py", planted, keys) == [
        "augshard/api.py:2: c['combo_dir']",
        "augshard/api.py:2: doc['combos']",
    ]
    inside = "def evaluate():\n    return [c['combo_dir'] for c in doc['confirm']['results']]\n"  # evaluation.json
    assert document_reads("augshard/api.py", inside, keys) == [
        "augshard/api.py:2: c['combo_dir']",
        "augshard/api.py:2: doc['confirm']",
        "augshard/api.py:2: doc['confirm']['results']",
    ]
