"""After `make install` on a machine with no internet, exactly 22 of the catalogue's 28 methods can run.

Every method is probed for real (built and run on a probe sentence, no check record trusted), so a regression in
what `augshard prepare` leaves behind (the NLTK data, TextAttack's cache marker, the homoglyph table) fails here
instead of turning into skips elsewhere. The other 6 need weights, vectors or a tagger that no package registry
ships; each must be unavailable for that reason, not for any other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from augshard.core.config import PACKAGE_CONF

pytestmark = pytest.mark.slow

CATALOGUE = PACKAGE_CONF / "augment_methods.yaml"

AVAILABLE_OFFLINE = frozenset(
    {
        *("nlp_randchar_ins", "nlp_randchar_del", "nlp_randchar_sub", "nlp_randchar_swap", "nlp_keyboard", "nlp_ocr"),
        *("nlp_randword_delete", "nlp_randword_sub", "nlp_randword_swap"),
        *("nlp_wordnet_syn", "nlp_wordnet_insert", "nlp_spelling"),
        *("ta_wordswap_qwerty", "ta_char_neighbor", "ta_char_rand_del", "ta_char_rand_ins", "ta_char_rand_swap"),
        *("ta_word_delete", "ta_wordswap_wordnet", "ta_word_insert_syn", "ta_contraction", "ta_wordswap_homoglyph"),
    }
)
# What each unavailable method's reason must name: the model, vectors or tagger it lacks.
UNAVAILABLE_OFFLINE = {
    "nlp_cwe_sub_roberta": "model 'roberta-base' not found locally",
    "nlp_cwe_insert_roberta": "model 'roberta-base' not found locally",
    "ta_mlm_sub_roberta": "model 'roberta-base' not found locally",
    "ta_mlm_sub_bert": "model 'bert-base-uncased' not found locally",
    "ta_wordswap_embedding": "counter-fitted word embeddings (paragramcf) are not available locally",
    "ta_word_swap_morph": "flair's upos-english-fast model",
}

# check_methods with no record file: every method is built and probed. It runs in a child process so the model
# caches can be pointed at empty directories before any library reads them (a developer's Hugging Face or flair
# cache must not make roberta-base or the upos tagger appear); augshard's own prepared state is used as is.
PROBE_ALL = """
import json, sys
from augshard.methods import check_methods, load_catalogue
statuses = check_methods(list(load_catalogue(sys.argv[1]).values()), trust_record=False)
with open(sys.argv[2], "w", encoding="utf-8") as fh:
    json.dump({i: {"ok": s.ok, "reason": s.reason, "fix": s.fix} for i, s in statuses.items()}, fh)
"""


def test_exactly_the_pinned_methods_run_offline_and_the_rest_say_what_they_lack(tmp_path: Path) -> None:
    assert not AVAILABLE_OFFLINE & UNAVAILABLE_OFFLINE.keys()
    out = tmp_path / "statuses.json"
    env = {**os.environ, "HF_HUB_CACHE": str(tmp_path / "hf-hub"), "FLAIR_CACHE_ROOT": str(tmp_path / "flair")}
    proc = subprocess.run(
        [sys.executable, "-c", PROBE_ALL, str(CATALOGUE), str(out)], capture_output=True, text=True, timeout=600,
        env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    statuses = json.loads(out.read_text(encoding="utf-8"))

    assert set(statuses) == AVAILABLE_OFFLINE | UNAVAILABLE_OFFLINE.keys()  # the catalogue's 28, all probed
    available = {i for i, s in statuses.items() if s["ok"]}
    why_not = {i: s["reason"] for i, s in statuses.items() if not s["ok"]}
    assert available == AVAILABLE_OFFLINE, why_not
    for method_id, named in UNAVAILABLE_OFFLINE.items():
        assert named in statuses[method_id]["reason"], (method_id, statuses[method_id])
        assert statuses[method_id]["fix"], method_id
