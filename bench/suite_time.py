"""How long `make test`'s two passes take on this host (issue 21's target: <= 15 minutes), into bench/results/T.json.

    .venv/bin/python bench/suite_time.py

Runs exactly what `make test` runs after its install step (the Makefile's two pytest passes: the suite on two workers
without the timing-dependent tests, then those alone), from the repository this script sits in, and records each
pass's time and counts with the host block every results file carries. Run it on a quiet machine: the suite uses both
cores.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time

from common import REPO, check, write_result

PASSES = {
    "parallel": ["-n", "2", "--dist", "loadscope", "-m", "not serial"],
    "serial": ["-m", "serial"],
}


def _counts(output: str) -> dict[str, int]:
    """pytest's last line ("603 passed, 16 skipped in ..."): each outcome and its count."""
    last = output.strip().splitlines()[-1] if output.strip() else ""
    return {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", last)}


def main() -> int:
    out: dict = {"name": "T make test", "passes": {}}
    for name, args in PASSES.items():
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=REPO,
                              capture_output=True, text=True)  # fmt: skip
        out["passes"][name] = {"wall_s": round(time.perf_counter() - t0, 1), "returncode": proc.returncode,
                               **_counts(proc.stdout)}  # fmt: skip
        print(name, out["passes"][name], flush=True)
    out["total_s"] = round(sum(p["wall_s"] for p in out["passes"].values()), 1)
    out["all_passed"] = all(p["returncode"] == 0 for p in out["passes"].values())
    out["target"] = "make test's two passes <= 15 min on the benchmark host"
    out["checks"] = [check("T make test (s)", out["total_s"], 900, higher_is_better=False)]
    path = write_result("T", out)
    print(f"T: {out['total_s']:.0f} s ({'met' if out['checks'][0]['met'] else 'missed'}); {path}")
    return 0 if out["all_passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
