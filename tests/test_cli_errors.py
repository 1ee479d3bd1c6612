"""Bad input through the CLI: one line naming the problem, exit 2, no traceback, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import CHEAP_RUN_ARGS, run_cli, sample_rows, tree, with_flag, write_csv

GOOD = CHEAP_RUN_ARGS


def catalogue(tmp_path: Path, text: str) -> str:
    path = tmp_path / "methods.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


CASES = {
    "missing input": (lambda d: ["--input", str(d / "nope.csv"), *GOOD], "input file not found"),
    "missing text column": (lambda d: ["--input", "in.csv", *with_flag("--text-col", "body")], "column 'body'"),
    "missing evidence column": (
        lambda d: ["--input", "in.csv", *with_flag("--evidence-col", "span")],
        "column 'span' (--evidence-col) not found",
    ),
    "missing id column": (lambda d: ["--input", "in.csv", *with_flag("--id-col", "uid")], "column 'uid'"),
    "empty input": (lambda d: ["--input", "empty.csv", *GOOD], "input file is empty"),
    "header only": (lambda d: ["--input", "header.csv", *GOOD], "no data rows"),
    "non-numeric similarity": (
        lambda d: ["--input", "in.csv", *with_flag("--quality-min-sim", "high")],
        "--quality-min-sim: expected a number",
    ),
    "inverted similarity range": (
        lambda d: ["--input", "in.csv", *with_flag("--quality-min-sim", "0.9"), "--quality-max-sim", "0.5"],
        "is greater than --quality-max-sim",
    ),
    "similarity out of range": (
        lambda d: ["--input", "in.csv", *with_flag("--quality-max-sim", "1.5")],
        "must be within [0, 1]",
    ),
    "unknown method": (
        lambda d: ["--input", "in.csv", *with_flag("--methods", "nlp_keyboard,nlp_teleport")],
        "unknown method id(s) nlp_teleport",
    ),
    "zero shards": (lambda d: ["--input", "in.csv", *with_flag("--num-shards", "0")], "--num-shards must be"),
    "non-integer variants": (
        lambda d: ["--input", "in.csv", *with_flag("--variants-per-sample", "two")],
        "--variants-per-sample: expected an integer, got 'two'",
    ),
    "non-integer seed": (lambda d: ["--input", "in.csv", *with_flag("--seed", "x")], "--seed: expected an integer"),
    "zero variants": (
        lambda d: ["--input", "in.csv", *with_flag("--variants-per-sample", "0")],
        "--variants-per-sample must be at least 1",
    ),
    "malformed config yaml": (
        lambda d: ["--input", "in.csv", "--config", str(d / "bad.yaml"), *GOOD],
        "bad.yaml: line 3, column 1: malformed YAML",
    ),
    "malformed catalogue yaml": (
        lambda d: ["--input", "in.csv", "--methods-config", catalogue(d, "methods:\n  - {id: x, lib: nlpaug\n"), *GOOD],
        "methods.yaml: line",
    ),
    "duplicate catalogue ids": (
        lambda d: [
            "--input",
            "in.csv",
            "--methods-config",
            catalogue(
                d,
                "methods:\n  - {id: nlp_keyboard, lib: nlpaug, kind: KeyboardAug}\n"
                "  - {id: nlp_keyboard, lib: nlpaug, kind: OcrAug}\n",
            ),
            *GOOD,
        ],
        "duplicate method id 'nlp_keyboard'",
    ),
    "unknown catalogue key": (
        lambda d: [
            "--input",
            "in.csv",
            "--methods-config",
            catalogue(d, "methods:\n  - {id: nlp_keyboard, lib: nlpaug, kind: KeyboardAug, speed: 3}\n"),
            *GOOD,
        ],
        "unknown key(s) speed",
    ),
    "duplicate ids": (lambda d: ["--input", "dupes.csv", *GOOD], "duplicate values ('r001')"),
    "non-utf8 input": (lambda d: ["--input", "latin1.csv", *GOOD], "not UTF-8"),
    "output root is a file": (
        lambda d: ["--input", "in.csv", "--output-root", "afile", *GOOD],
        "output root is a file",
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_is_one_line_and_exit_2(case: str, tmp_path: Path) -> None:
    rows = sample_rows(5)
    write_csv(tmp_path / "in.csv", rows)
    write_csv(tmp_path / "dupes.csv", rows + [dict(rows[0])])
    (tmp_path / "empty.csv").write_bytes(b"")
    (tmp_path / "header.csv").write_text("id,label,text,evidence\n", encoding="utf-8")
    (tmp_path / "latin1.csv").write_bytes("id,label,text,evidence\nr1,pos,Caf\xe9 au lait.,Caf\xe9\n".encode("latin-1"))
    (tmp_path / "bad.yaml").write_text("seed: 1\nmethods: [a, b\n", encoding="utf-8")
    (tmp_path / "afile").write_text("not a folder", encoding="utf-8")
    build_args, message = CASES[case]
    args = build_args(tmp_path)
    before = tree(tmp_path)
    proc = run_cli("run", *args, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert tree(tmp_path) == before


def test_merge_without_manifests_is_a_user_error(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    proc = run_cli("merge", "--output-root", "out", cwd=tmp_path)
    assert proc.returncode == 2
    assert "no shard manifests" in proc.stderr and "Traceback" not in proc.stderr
