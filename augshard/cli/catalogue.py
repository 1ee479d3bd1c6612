"""`augshard methods` and `augshard prepare`: the catalogue, what can run here, and the offline resources."""

from __future__ import annotations

from typing import Any

import typer
from rich.markup import escape

from augshard.cli.app import (
    app,
    console,
    err_console,
    format_option,
    method_ids,
    user_errors,
)
from augshard.core.config import DEFAULT_COSTS_PATH, DEFAULT_METHODS_CONFIG, DEFAULT_OUTPUT_ROOT, resolve_conf_path
from augshard.core.errors import AugshardError
from augshard.events.output import check_format, notice, print_rows, write_json
from augshard.methods import StepsShown, check_methods, method_check_record
from augshard.methods.bench import bench as bench_methods
from augshard.methods.bench import costs_document, sample_texts, write_costs
from augshard.methods.catalogue import read_catalogue, resolve_selection
from augshard.methods.offline import apply_offline_env
from augshard.methods.probes import probe_line
from augshard.methods.provision import prepare as prepare_resources
from augshard.methods.resources import provision_all
from augshard.shard.encoders import ensure_onnx_export, onnx_available
from augshard.storage.outputs import Protected, check_output, run_protected


@app.command()
@user_errors
def methods(
    methods_config: str = typer.Option(
        None, "--methods-config", "--methods-yaml", help=f"Method catalogue [{DEFAULT_METHODS_CONFIG}]."
    ),
    methods: str = typer.Option(
        None, "--methods", help="Ids, shell patterns or 'all', comma-separated [all].", autocompletion=method_ids
    ),
    exclude_methods: str = typer.Option(
        None, "--exclude-methods", help="Ids or patterns to leave out, comma-separated.", autocompletion=method_ids
    ),
    check: bool = typer.Option(True, "--check/--no-check", help="Build each method and augment a probe sentence."),
    bench: bool = typer.Option(False, "--bench", help="Time each available method and write the costs file."),
    input: str = typer.Option(None, "--input", help="With --bench: texts to time on [the shipped sample]."),
    text_col: str = typer.Option(None, "--text-col", help="With --bench: column of --input [text; sample: evidence]."),
    rows: int = typer.Option(50, "--rows", help="With --bench: how many texts each method augments."),
    out: str = typer.Option(None, "--out", help="With --bench: the costs file [data/cache/method_costs.json]."),
    force: bool = typer.Option(False, "--force", help="With --bench: replace an --out that is not a costs file."),
    fmt: str = format_option(),
) -> int:
    """List the catalogue: id, library, class, and whether each method can run here (and if not, why).

    With --bench, time every available method instead and write the relative costs that `run --calibrate` uses.
    """

    check_format(fmt)
    path = resolve_conf_path(methods_config, DEFAULT_METHODS_CONFIG)
    catalogue = read_catalogue(path)
    for note in catalogue.notes:
        notice(escape(note))
    split = [tuple(m.strip() for m in v.split(",") if m.strip()) if v else None for v in (methods, exclude_methods)]
    selection = resolve_selection(catalogue.specs, split[0], split[1] or (), catalogue_path=str(path))
    specs = {s.id: s for s in selection.specs}
    apply_offline_env()
    if bench:
        check_output(out or DEFAULT_COSTS_PATH, "--out", _bench_protected(input), "costs", force)  # before timing
        return _bench_methods(specs, input, text_col, rows, out, fmt)
    # What the probe cache knows for this very entry, libraries and resources is not probed again (see probes.py).
    record = method_check_record()
    statuses = (
        check_methods(list(specs.values()), record, on_probe=lambda ids: notice(escape(probe_line(ids, record))))
        if check
        else {}
    )
    _print_methods(path, specs, statuses, fmt)
    return 0


METHOD_COLUMNS = ("id", "library", "class", "status", "reason", "fix")


def _print_methods(path: Any, specs: dict, statuses: dict, fmt: str) -> None:
    records = []
    for spec in specs.values():
        st = statuses.get(spec.id)
        state = "not checked" if st is None else "ok" if st.ok else "unavailable"
        reason, fix = (st.reason, st.fix) if st is not None and not st.ok else ("", "")
        records.append(
            {"id": spec.id, "lib": spec.lib, "kind": spec.kind, "status": state, "reason": reason, "fix": fix}
        )
    available = sum(1 for r in records if r["status"] == "ok")
    if fmt == "json":
        write_json({"catalogue": str(path), "methods": records, "available": available, "total": len(records)})
        return
    if fmt == "tsv":
        keys = ("id", "lib", "kind", "status", "reason", "fix")  # under METHOD_COLUMNS' names
        print_rows(console, METHOD_COLUMNS, [[r[k] for k in keys] for r in records], "tsv")
        return
    style = {"ok": "green", "unavailable": "red", "not checked": "dim"}
    rows = [
        [r["id"], r["lib"], r["kind"], f"[{style[r['status']]}]{r['status']}[/]", escape(r["reason"]), escape(r["fix"])]
        for r in records
    ]
    print_rows(console, METHOD_COLUMNS, rows, fmt, f"method catalogue {path}")
    if fmt == "table" and statuses:
        console.print(f"{available} of {len(records)} methods can run here")


def _bench_protected(input: str | None) -> Protected:
    """What the costs file may not touch: the texts it times on and the default run's input, outputs, cache and
    logs, but for the costs file's own place in the cache."""
    return run_protected(DEFAULT_OUTPUT_ROOT, own=(DEFAULT_COSTS_PATH,), inputs=(input,) if input else ())


BENCH_TSV = ("id", "rows_per_second", "seconds_per_row", "relative_cost", "errors")


def _bench_methods(
    specs: dict, input: str | None, text_col: str | None, rows: int, out: str | None, fmt: str = "table"
) -> int:
    """`methods --bench`: time every available method on the same texts and write the costs file; the timings as
    a table, TSV (BENCH_TSV) or the costs document (json), and every other line on stderr with tsv and json."""
    from rich.table import Table

    lines = console if fmt == "table" else err_console
    texts, source = sample_texts(input, text_col, rows)
    lines.print(f"timing {len(specs)} methods on {len(texts)} texts from {source}")
    result = bench_methods(list(specs.values()), texts, source, progress=StepsShown("timing", "timed"))
    costs = result.relative_costs()
    timings = sorted(result.timings, key=lambda t: (costs[t.id], t.id))
    document = costs_document(result)
    if fmt == "json":
        write_json(document)
    elif fmt == "tsv":
        values = [[t.id, t.rows_per_second, t.seconds_per_row, costs[t.id], t.errors] for t in timings]
        print_rows(console, BENCH_TSV, values, "tsv")
    else:
        table = Table(title=f"method costs ({len(texts)} rows each)")
        for col in ("id", "rows/s", "s/row", "relative cost"):
            table.add_column(col, justify="left" if col == "id" else "right")
        for t in timings:
            table.add_row(t.id, f"{t.rows_per_second:,.1f}", f"{t.seconds_per_row:.5f}", f"{costs[t.id]:g}")
        console.print(table)
    for t in result.timings:
        if t.errors:
            notice(f"{t.id} raised on {t.errors} of {t.rows} texts (timed anyway)")
    for method_id, reason in result.skipped:
        lines.print(f"[yellow]skipped (unavailable):[/yellow] {method_id}: {escape(reason)}")
    written = write_costs(out or DEFAULT_COSTS_PATH, document)
    lines.print(f"{len(result.timings)} methods timed, {len(result.skipped)} skipped; costs: {written}")
    return 0


@app.command()
@user_errors
def prepare(
    target: str = typer.Option(
        None,
        "--target",
        help="Where to build the NLTK data (default: AUGSHARD_NLTK_DATA or ~/.cache/augshard/nltk_data).",
    ),
) -> int:
    """Make the offline resources the methods need (NLTK data, TextAttack's cache marker); idempotent."""
    from pathlib import Path

    try:
        where = prepare_resources(Path(target) if target else None, log=console.print)
        provision_all(log=console.print)  # every resource a method reads that `prepare` can build
    except (RuntimeError, OSError) as exc:
        raise AugshardError(str(exc)) from None
    _export_default_encoder()
    console.print(f"NLTK data ready in {where}")
    return 0


def _export_default_encoder() -> None:
    """The similarity model's ONNX export, made here (about a minute, once per machine) so that the first run
    does not pay for it; skipped, with a line, where `augshard[onnx]` is not installed."""
    if not onnx_available():
        console.print(
            "ONNX Runtime not installed: the embedding filter will run on torch (pip install 'augshard[onnx]')"
        )
        return
    console.print(f"similarity model (ONNX): {ensure_onnx_export(None, log=console.print)}")
