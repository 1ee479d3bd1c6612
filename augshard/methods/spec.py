"""`MethodSpec`: one catalogue entry (which library class to build, with which arguments), the type every room of
`methods/` and the plan share."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class MethodSpec:
    """One catalogue entry: which library class to build, with which arguments."""

    id: str
    lib: str
    kind: str
    args_json: str = "{}"
    requires_gpu: bool = False
    cost: float = 1.0
    model_path: str | None = None
    embedding_path: str | None = None
    description: str = ""

    @property
    def args(self) -> dict[str, Any]:
        return json.loads(self.args_json)

    def canonical(self) -> str:
        """What identifies this method's behaviour: library, class and arguments (not its cost)."""
        return json.dumps(
            {
                "lib": self.lib,
                "kind": self.kind,
                "args": self.args,
                "model_path": self.model_path,
                "embedding_path": self.embedding_path,
            },
            sort_keys=True,
            separators=(",", ":"),
        )
