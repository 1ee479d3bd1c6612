"""docs/benchmarks.md from its template and the results files: every figure in it names the file and key it comes from.

    .venv/bin/python bench/docs.py            write docs/benchmarks.md
    .venv/bin/python bench/docs.py --check    exit 1 if the committed doc differs from what the results files give

Placeholders in bench/benchmarks.md.in:

    {{FILE:EXPR|FORMAT}}  a figure from bench/results/FILE.json. EXPR is a key path (keys joined by dots, list items
                          by index: `busy_s.0`) or arithmetic over key paths and numbers, each token apart
                          (`torch.filter_s / onnx.filter_s`). FORMAT: a Python format spec (`.1f`, `,`, `.2%`), `mins`
                          (seconds as "48 min 56 s"), `len`, `yesno`, `check[:UNIT]` (a check the bench recorded:
                          its target and whether it was met, or by how much it was missed), `le:N[UNIT]` /
                          `ge:N[UNIT]` (the figure against a target stated in the template).
    {{@FILE}}             where FILE's figures come from: the file, its date, commit and host (CPU model, AVX-512 and
                          AVX2), or "host not recorded" for a file written before benches recorded one.
    {{@sources}}          a table of every results file the template cites, with the same provenance.

A placeholder whose file or key is missing is refused: one line naming it, exit 2, nothing written.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
TEMPLATE = REPO / "bench" / "benchmarks.md.in"
DOC = REPO / "docs" / "benchmarks.md"
PLACEHOLDER = re.compile(r"\{\{(.*?)\}\}")
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "*": lambda a, b: a * b, "/": lambda a, b: a / b}


class DocError(Exception):
    """A placeholder the results files cannot fill (its message is the one line the user sees)."""


class Results:
    """The results files a template reads, each loaded once; `cited` keeps the order they were first named in."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.cited: dict[str, dict] = {}

    def load(self, name: str, placeholder: str) -> dict:
        if name not in self.cited:
            path = self.folder / f"{name}.json"
            try:
                self.cited[name] = json.loads(path.read_text(encoding="utf-8"))
            except FileNotFoundError:
                raise DocError(f"{placeholder}: no results file {self.rel(name)}") from None
            except (OSError, ValueError) as exc:
                raise DocError(f"{placeholder}: {self.rel(name)} is not readable JSON ({exc})") from None
        return self.cited[name]

    def rel(self, name: str) -> str:
        path = self.folder / f"{name}.json"
        return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def lookup(doc: object, path: str, where: str) -> object:
    value = doc
    for key in path.split("."):
        if isinstance(value, dict) and key in value:
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            raise DocError(f"{where} has no key {path!r}")
    return value


def evaluate(tokens: list[str], doc: dict, where: str) -> object:
    """EXPR: one key path (any value), or + - * / over key paths and numbers with the usual precedence."""
    if len(tokens) == 1:
        return lookup(doc, tokens[0], where)
    pos = 0

    def operand() -> float:
        nonlocal pos
        token = tokens[pos] if pos < len(tokens) else ""
        pos += 1
        if token == "(":
            value = expression()
            pos += 1  # the closing parenthesis
            return value
        if re.fullmatch(r"\d+(\.\d+)?", token):
            return float(token)
        value = lookup(doc, token, where)
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise DocError(f"{where}: {token!r} is not a number")
        return value

    def term() -> float:
        nonlocal pos
        value = operand()
        while pos < len(tokens) and tokens[pos] in "*/":
            pos += 1
            value = OPS[tokens[pos - 1]](value, operand())
        return value

    def expression() -> float:
        nonlocal pos
        value = term()
        while pos < len(tokens) and tokens[pos] in "+-":
            pos += 1
            value = OPS[tokens[pos - 1]](value, term())
        return value

    return expression()


def _target(bound: float, sign: str, unit: str, value: float) -> str:
    met = value <= bound if sign == "<=" else value >= bound
    shown = f"{bound * 100:g}%" if unit == "%" else f"{bound:g}{unit}"
    miss = "" if met else f" (missed by {abs(value - bound) / bound:.0%})"
    return f"{'≤' if sign == '<=' else '≥'} {shown} {'✓' if met else '✗'}{miss}"


def fmt(value: object, spec: str, where: str) -> str:
    kind, _, arg = spec.partition(":")
    if kind == "check":
        if not isinstance(value, dict) or not {"value", "target"} <= value.keys():
            raise DocError(f"{where}: not a recorded check")
        sign, bound = value["target"].split()[:2]
        return _target(float(bound), sign, arg, value["value"])
    if kind in ("le", "ge"):
        number = re.match(r"[\d.]+", arg)
        if number is None:
            raise DocError(f"{where}: '{spec}' needs a target number")
        return _target(float(number.group()), "<=" if kind == "le" else ">=", arg[number.end() :], float(value))
    if kind == "len":
        return str(len(value))
    if kind == "yesno":
        return "yes" if value else "no"
    if kind == "mins":
        minutes, seconds = divmod(round(float(value)), 60)
        return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"
    if isinstance(value, dict | list) and not spec:
        raise DocError(f"{where}: a {type(value).__name__}, not a figure")
    try:
        return format(value, spec) if spec else str(value)
    except (TypeError, ValueError) as exc:
        raise DocError(f"{where}: cannot format {value!r} as '{spec}' ({exc})") from None


def cpu(host: dict) -> str:
    """The CPU model and the vector instruction sets that move the figures (AVX-512, AMX, AVX2)."""
    flags = set(host.get("cpu_flags") or [])
    avx512 = [n for f, n in (("avx512f", "F"), ("avx512_vnni", "VNNI"), ("avx512_bf16", "BF16")) if f in flags]
    sets = [f"AVX-512 ({', '.join(avx512)})"] if avx512 else []
    sets += ["AMX"] * any(f.startswith("amx") for f in flags) + ["AVX2"] * ("avx2" in flags)
    return f"{host.get('cpu') or 'CPU not recorded'} with {', '.join(sets) if sets else 'neither AVX2 nor AVX-512'}"


def provenance(doc: dict) -> tuple[str, str, str]:
    """(date, commit, host) of a results file, each saying so where the file did not record it."""
    host = doc.get("host")
    if not isinstance(host, dict):
        date = str(doc["measured_at"])[:10] if doc.get("measured_at") else "date not recorded"
        return date, "commit not recorded", "host not recorded"
    commit = str(host.get("commit") or "commit not recorded")
    if len(commit) == 40 and all(c in "0123456789abcdef" for c in commit):
        commit = commit[:7]  # the short form git prints, as the other files record it
    if host.get("dirty"):
        commit += " with uncommitted changes"
    date = str(host["date"])[:10] if host.get("date") else "date not recorded"
    speed = host.get("python_speed_mops")
    pace = f", Python at {speed:.1f} M loop steps/s" if isinstance(speed, (int, float)) else ""
    return date, commit, f"{cpu(host)}, {host.get('cores', '?')} cores{pace}"


def render(template: str, results: Results) -> str:
    def fill(match: re.Match) -> str:
        body = match.group(1).strip()
        if body == "@sources":
            return "{{@sources}}"  # filled last, once every cited file is known
        if body.startswith("@"):
            doc = results.load(body[1:], match.group(0))
            date, commit, host = provenance(doc)
            return f"`{results.rel(body[1:])}`: {date}, {commit}, {host}"
        name, sep, rest = body.partition(":")
        if not sep or not rest.strip():
            raise DocError(f"{match.group(0)}: expected {{{{FILE:KEY|FORMAT}}}}")
        expr, _, spec = rest.partition("|")
        doc = results.load(name.strip(), match.group(0))
        where = f"{match.group(0)}: {results.rel(name.strip())}"
        return fmt(evaluate(expr.split(), doc, where), spec.strip(), where)

    text = PLACEHOLDER.sub(fill, template)
    rows = ["| results file | date | commit | host |", "|---|---|---|---|"]
    rows += [f"| `{results.rel(n)}` | {' | '.join(provenance(doc))} |" for n, doc in results.cited.items()]
    return text.replace("{{@sources}}", "\n".join(rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="verify the doc is what the results files give")
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--out", type=Path, default=DOC)
    opts = parser.parse_args(argv)
    try:
        text = render(opts.template.read_text(encoding="utf-8"), Results(opts.results))
    except (DocError, OSError) as exc:
        print(f"bench/docs.py: {exc}", file=sys.stderr)
        return 2
    if opts.check:
        current = opts.out.read_text(encoding="utf-8") if opts.out.is_file() else ""
        if current != text:
            print(f"{opts.out} is not what bench/results gives: run .venv/bin/python bench/docs.py", file=sys.stderr)
            return 1
        return 0
    tmp = opts.out.with_name(f".{opts.out.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, opts.out)  # whole or not at all
    return 0


if __name__ == "__main__":
    sys.exit(main())
