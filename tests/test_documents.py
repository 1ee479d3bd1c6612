"""Data that crosses a file boundary: fingerprints that keep their values, meta.json's counters (old files read as
complete), the run document, export facts and the label check as typed records that read back what they wrote."""

from __future__ import annotations

import hashlib
import json

from augshard.config import RunConfig
from augshard.fingerprint import sha

PAYLOAD = ["a", {"b": 1.5, "a": [1, "é"]}, None]


def test_one_hasher_keeps_every_persisted_fingerprint() -> None:
    # Values computed by the two helpers this one replaced (config._sha and plan._sha), at the commit before it.
    assert sha(PAYLOAD) == "0e446b2bdca8cf64"
    assert sha(PAYLOAD, compact=True) == "fba5933770292034"
    assert RunConfig().fingerprint() == "049378f7731c6692"
    cfg = RunConfig(input="x.csv", quality_metric="char_ratio", label_col="label", keep_vectors=True,
                    quality_scope="each-step")  # fmt: skip
    assert cfg.fingerprint() == "73b0de2177ca31a6"
    # The method check record's key: the plain encoding, 24 digits.
    plain = json.dumps(PAYLOAD, sort_keys=True).encode()
    assert sha(PAYLOAD, length=24) == hashlib.sha256(plain).hexdigest()[:24]
