"""The one hasher of augshard's fingerprints: a short sha256 of a JSON encoding of what made a result."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def sha(payload: Any, *, compact: bool = False, length: int = 16) -> str:
    """The first `length` hex digits of the sha256 of `payload` as JSON with sorted keys.

    Fingerprints are persisted (meta.json, manifests, the method check record, evaluation.json), so each keeps the
    encoding it was born with: `compact` (no spaces, any other value as its str()) is RunConfig's; the plain
    `json.dumps` encoding is the plan's, each combo's, each method probe's and an export's. Changing either
    would make every finished combo look stale."""
    if compact:
        blob = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    else:
        blob = json.dumps(payload, sort_keys=True, default=str)  # default: only what JSON could not encode
    return hashlib.sha256(blob.encode()).hexdigest()[:length]
