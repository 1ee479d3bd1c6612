"""Whether two runs' outputs are byte-identical: every combo's dataset.parquet under two output roots.

    .venv/bin/python scripts/same_outputs.py REFERENCE_ROOT NEW_ROOT

Prints one line per differing or missing combo and a total; exits 1 when anything differs. Used to check that a
change of code (a refactor) leaves the outputs of a reference run at an earlier commit exactly as they were."""

from __future__ import annotations

import sys
from pathlib import Path


def datasets(root: Path) -> dict[str, bytes]:
    return {p.parent.name: p.read_bytes() for p in sorted(root.glob("combo_*/dataset.parquet"))}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    ref, new = (datasets(Path(a)) for a in argv)
    if not ref:
        print(f"no combo_*/dataset.parquet under {argv[0]}", file=sys.stderr)
        return 2
    differ = 0
    for name in sorted(ref.keys() | new.keys()):
        if name not in new or name not in ref:
            print(f"{name}: only in {'the reference' if name in ref else 'the new run'}")
            differ += 1
        elif ref[name] != new[name]:
            print(f"{name}: dataset.parquet differs")
            differ += 1
    print(f"{len(ref)} reference combos, {len(new)} new, {differ} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
