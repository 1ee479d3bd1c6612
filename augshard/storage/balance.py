"""How many variants each usable row asks for: `--variants-per-sample` for every row, or, with `--balance` or
`--variants-per-class`, a count chosen per class of `--label-col`.

`--balance` gives the rows of class c enough variants that c's originals plus its variants reach a target (the
largest class's originals unless `--balance-target` says otherwise), at most `--max-variants-per-sample` a row: the
classes the target exceeds get `(target - n_c) // n_c` variants a row, and the remainder goes one each to the rows
first in the order of a hash of the run's seed and the row's key, so the counts are the same in every shard and
every rerun (`imblearn`'s "not majority" oversampling, made of variants). Counts are of variants *asked*: a
variant the filter rejects is not replaced beyond a row's candidate budget, and each combo's meta.json says how
many of each class it kept."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from augshard.core.errors import InputError
from augshard.core.settings import label_counts
from augshard.storage.data import Dataset, Row

NO_LABEL = ""  # the class of a row whose label is missing (shown as "(no label)")


def label_text(value: Any) -> str:
    """A label as text, as `--variants-per-class` names it (a Parquet column of ints reads as "1")."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NO_LABEL
    return str(value).strip()


@dataclass(frozen=True)
class ClassAsk:
    """One class of the rows a run augments: its originals and the variants its rows ask for."""

    label: str
    originals: int
    fewest: int  # the fewest and the most variants one of its rows asks for (they differ by one at most, or by the cap)
    most: int
    asked: int  # variants asked per combo, over its rows
    how: str  # "balance", "per-class" (--variants-per-class) or "uniform" (--variants-per-sample)

    @property
    def shown(self) -> str:
        return self.label if self.label != NO_LABEL else "(no label)"

    @property
    def per_row(self) -> str:
        return str(self.fewest) if self.fewest == self.most else f"{self.fewest}-{self.most}"


@dataclass(frozen=True)
class Allocation:
    """The variants each usable row asks for in every combo. Uniform (`classes` empty) unless the run balances."""

    default: int  # --variants-per-sample: every row's count when uniform
    rows: int = 0  # usable rows
    counts: Mapping[int, int] | None = None  # row index -> variants asked (every usable row), when not uniform
    labels: Mapping[int, str] | None = None  # row index -> its class, when not uniform
    classes: tuple[ClassAsk, ...] = ()  # rarest first
    target: int | None = None  # --balance's target per class (None without --balance)
    cap: int | None = None  # --max-variants-per-sample, with --balance

    @property
    def uniform(self) -> bool:
        return self.counts is None

    def of(self, row: Row) -> int:
        return self.default if self.counts is None else self.counts[row.index]

    def label(self, row: Row) -> str:
        return NO_LABEL if self.labels is None else self.labels[row.index]

    def asked(self, rows: list[Row]) -> int:
        return len(rows) * self.default if self.counts is None else sum(self.counts[r.index] for r in rows)

    @property
    def asked_total(self) -> int:
        """The variants a combo asks for over every usable row."""
        return self.rows * self.default if self.counts is None else sum(self.counts.values())

    def to_json(self) -> dict[str, Any] | None:
        """The plan's `balance`: the target, the cap and each class (rarest first); None when uniform."""
        if self.uniform:
            return None
        classes = [{"label": c.label, "originals": c.originals, "per_row": c.per_row, "asked": c.asked, "how": c.how}
                   for c in self.classes]  # fmt: skip
        return {"target": self.target, "max_variants_per_sample": self.cap, "classes": classes}

    def line(self) -> str:
        """One line for the plan and the run's header: the target and each class's count per row."""
        if self.uniform:
            return ""
        head = f"balance: target {self.target:,} per class" if self.target is not None else "variants per class"
        parts = [f"{c.shown} {c.originals:,} -> {c.per_row}/row" for c in self.classes]
        return f"{head}: {', '.join(parts)}"


def allocate(dataset: Dataset, cfg: Any) -> Allocation:
    """The allocation of a run's settings over its usable rows (`cfg`: a RunConfig). A class `--variants-per-class`
    names that no row to augment has is an InputError: a misspelt label would otherwise change nothing."""
    if not cfg.balance and not cfg.variants_per_class:
        return Allocation(cfg.variants_per_sample, len(dataset.rows))
    values = dataset.table.column(cfg.label_col).to_pylist()
    by_class: dict[str, list[Row]] = {}
    for row in dataset.rows:
        by_class.setdefault(label_text(values[row.index]), []).append(row)
    named = label_counts.read(cfg.variants_per_class)
    if missing := sorted(set(named) - set(by_class)):
        found = ", ".join(sorted(by_class)[:10]) or "none"
        raise InputError(
            f"{dataset.path}: no row to augment has {cfg.label_col} = {', '.join(missing)} (--variants-per-class); "
            f"values: {found}"
        )
    target = None
    if cfg.balance:
        target = cfg.balance_target or max((len(rows) for rows in by_class.values()), default=0)
    counts: dict[int, int] = {}
    labels: dict[int, str] = {}
    classes = []
    for label, rows in by_class.items():
        if label in named:
            each, how = [named[label]] * len(rows), "per-class"
        elif target is not None:
            each, how = _balanced(rows, target, cfg.max_variants_per_sample, cfg.seed), "balance"
        else:
            each, how = [cfg.variants_per_sample] * len(rows), "uniform"
        for row, n in zip(rows, each, strict=True):
            counts[row.index] = n
            labels[row.index] = label
        classes.append(ClassAsk(label, len(rows), min(each), max(each), sum(each), how))
    classes.sort(key=lambda c: (c.originals, c.label))
    return Allocation(cfg.variants_per_sample, len(dataset.rows), counts, labels, tuple(classes), target,
                      cfg.max_variants_per_sample if target is not None else None)  # fmt: skip


def _balanced(rows: list[Row], target: int, cap: int, seed: int) -> list[int]:
    """Variants per row of one class so that its originals plus variants reach `target`, each at most `cap`."""
    base, extra = divmod(max(0, target - len(rows)), len(rows))
    if base >= cap:
        return [cap] * len(rows)
    first = sorted(range(len(rows)), key=lambda i: _rank(seed, rows[i].key))[:extra]
    chosen = set(first)
    return [base + (1 if i in chosen else 0) for i in range(len(rows))]


def _rank(seed: int, key: str) -> bytes:
    return hashlib.sha256(f"{seed}\x1fbalance\x1f{key}".encode("utf-8", "surrogatepass")).digest()
