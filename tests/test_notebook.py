"""augshard.run in a real Jupyter kernel (ipykernel, driven by jupyter_client as a notebook front end drives it):
quiet by default apart from the shard table, which the kernel displays as rich output, and the same result as a
script gets."""

from __future__ import annotations

import os
import queue
import textwrap
from pathlib import Path

import pytest
from helpers import REPO, beyond_probes, sample_rows, write_csv

jupyter_client = pytest.importorskip(
    "jupyter_client", reason="the dev extra is not installed (pip install -e '.[dev]')"
)
pytest.importorskip("ipykernel", reason="the dev extra is not installed (pip install -e '.[dev]')")

TIMEOUT_S = 240


def _execute(client: object, code: str) -> list[dict]:
    """Run `code` in the kernel; every iopub message it caused, until the kernel is idle again."""
    msg_id = client.execute(code)  # type: ignore[attr-defined]
    messages = []
    while True:
        try:
            msg = client.get_iopub_msg(timeout=TIMEOUT_S)  # type: ignore[attr-defined]
        except queue.Empty:
            raise AssertionError(f"the kernel said nothing for {TIMEOUT_S} s; so far: {messages}") from None
        if msg["parent_header"].get("msg_id") != msg_id:
            continue
        messages.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return messages


@pytest.fixture(scope="module")
def notebook(tmp_path_factory: pytest.TempPathFactory) -> dict:
    root = tmp_path_factory.mktemp("notebook")
    write_csv(root / "in.csv", sample_rows(20))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    # IPC sockets in the test's folder: nothing listens on a TCP port.
    manager = jupyter_client.KernelManager(kernel_name="python3", transport="ipc", ip=str(root / "kernel"))
    manager.start_kernel(cwd=str(root), env=env)
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=TIMEOUT_S)
    try:
        cell = textwrap.dedent(
            """
            import augshard
            result = augshard.run(input="in.csv", text_col="text", id_col="id", evidence_col="evidence",
                                  methods=["nlp_keyboard", "nlp_randchar_swap"], quality_metric="char_ratio",
                                  num_shards=2)
            """
        )
        run = _execute(client, cell)
        check = _execute(client, "print(result.exit_code, len(result.combos), result.rows)")
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    return {"root": root, "run": run, "check": check}


def _kinds(messages: list[dict]) -> list[str]:
    return [m["msg_type"] for m in messages if m["msg_type"] != "status"]


def test_a_notebook_run_displays_the_shard_table_and_prints_nothing_else(notebook: dict) -> None:
    run = notebook["run"]
    errors = [m["content"] for m in run if m["msg_type"] == "error"]
    assert not errors, errors
    shown = [m["content"]["data"] for m in run if m["msg_type"] in ("display_data", "update_display_data")]
    # Rich in a kernel displays as a mime bundle: the table of the two shards, each done, as HTML and as text.
    assert shown, _kinds(run)
    last = shown[-1]
    assert "text/html" in last and "text/plain" in last
    table = last["text/plain"]
    assert "shard" in table and table.count("done") >= 2, table
    assert len(shown) == 1, shown  # the final table, once (no ipywidgets: no live display), and nothing empty
    # Quiet by default: nothing on the cell's stdout or stderr (its notes are in the result), but the lines of a
    # method probed for the first time on this machine (the suite shares one probe cache).
    streams = "".join(m["content"]["text"] for m in run if m["msg_type"] == "stream")
    assert beyond_probes(streams) == [], streams


def test_the_notebook_result_is_the_scripts_result(notebook: dict) -> None:
    out = "".join(m["content"]["text"] for m in notebook["check"] if m["msg_type"] == "stream")
    code, combos, rows = (int(x) for x in out.split())
    assert (code, combos) == (0, 3) and rows > 0
    manifest = notebook["root"] / "data" / "processed" / "augsets" / "manifest_final.csv"
    assert manifest.is_file()
    written = Path(manifest).read_text(encoding="utf-8").splitlines()
    assert len(written) == 1 + 3  # a header and the three combos
