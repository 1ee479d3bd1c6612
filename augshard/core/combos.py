"""Combos: ordered tuples of method ids, their ids and folder names, and how they are enumerated."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Iterable
from dataclasses import dataclass

MAX_DIR_NAME = 100


def combo_id_of(method_ids: Iterable[str]) -> str:
    """First 10 hex of sha1 of the ids joined by '+', as the original tool named combos."""
    return hashlib.sha1("+".join(method_ids).encode()).hexdigest()[:10]


@dataclass(frozen=True)
class Combo:
    """Methods applied in sequence to every row's evidence."""

    methods: tuple[str, ...]

    @property
    def k(self) -> int:
        return len(self.methods)

    @property
    def combo_id(self) -> str:
        return combo_id_of(self.methods)

    @property
    def name(self) -> str:
        return "+".join(self.methods)

    @property
    def dir_name(self) -> str:
        """`combo_<k>_<ids joined by '+'>`, or `combo_<k>_<combo_id>` when that would be too long."""
        name = f"combo_{self.k}_{self.name}"
        return name if len(name) <= MAX_DIR_NAME else f"combo_{self.k}_{self.combo_id}"


def enumerate_combos(method_ids: Iterable[str], mode: str, max_size: int) -> list[Combo]:
    """`single`: each method; `bounded_k`: all combinations of size 1..max_size; `all`: every size.

    Ids are sorted first, so a combo's order (and therefore its id) never depends on the catalogue's order.
    """
    ids = sorted(set(method_ids))
    if mode == "single":
        top = 1
    elif mode == "bounded_k":
        top = min(max_size, len(ids))
    elif mode == "all":
        top = len(ids)
    else:
        raise ValueError(f"unknown combo mode {mode!r}")
    return [Combo(c) for k in range(1, top + 1) for c in itertools.combinations(ids, k)]
