"""The local resources a method reads besides NLTK data and its model, each declared once: what it is, where it is
read from, whether a build may start without it, what says it is missing (a library's error), how to fix that, how
the adapter hands it to the method, and how `augshard prepare` provisions it. A family names the ones it reads
(`Family.data`); the adapter, the probe cache's key, `diagnose` and `prepare` all read this table."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from augshard.methods.models import MethodUnavailable, homoglyph_file
from augshard.methods.offline import textattack_cache_dir
from augshard.methods.spec import MethodSpec


@dataclass(frozen=True)
class Resource:
    """One local resource. `where(spec)`: the file or folder it is read from (a spec may name its own copy).
    `required`: a build is refused while `where` is missing (else the library is left to fail, and `markers`,
    words of its error, say it was this). `load` / `provision`: "module:function" names, imported when used:
    `load(spec, path) -> {arg: value}` hands it to the method's constructor; `provision(log) -> Path` builds it."""

    name: str
    what: str
    where: Callable[[MethodSpec], Path]
    missing: str  # the reason line, when it is absent ({path}: where it was looked for)
    fix: str  # the fix line
    folder: bool = False  # `where` is a folder (its files enter the probe key), else one file
    needs: str = ""  # in a folder: the file that must be there
    required: bool = True
    markers: tuple[str, ...] = ()
    arg: str | None = None  # the constructor argument `load` fills; a catalogue entry may give it itself
    load: str | None = None
    provision: str | None = None

    def present(self, spec: MethodSpec) -> bool:
        path = self.where(spec)
        return (path / self.needs).is_file() if self.needs else path.is_dir() if self.folder else path.is_file()

    def reason(self, spec: MethodSpec) -> str:
        return self.missing.format(path=self.where(spec))

    def loaded(self, spec: MethodSpec) -> Any:
        """What `load` makes of it for the method's `arg`."""
        assert self.load is not None
        return _function(self.load)(self.where(spec))


def _function(name: str) -> Callable[..., Any]:
    module, _, attr = name.partition(":")
    return getattr(importlib.import_module(module), attr)


def _homoglyphs(_spec: MethodSpec) -> Path:
    try:
        return homoglyph_file()
    except MethodUnavailable:  # no TextAttack: building the method says so first
        return Path("textattack-not-installed")


def _paragramcf(spec: MethodSpec) -> Path:
    if spec.embedding_path:
        return Path(spec.embedding_path).expanduser()
    return Path(os.environ.get("TA_CACHE_DIR") or textattack_cache_dir()) / "word_embeddings" / "paragramcf"


def _flair_models(_spec: MethodSpec) -> Path:
    return Path(os.environ.get("FLAIR_CACHE_ROOT", "~/.flair")).expanduser() / "models"


RESOURCES: dict[str, Resource] = {
    r.name: r
    for r in (
        Resource(
            "homoglyph_table",
            "TextAttack's homoglyph table (built by `augshard prepare`)",
            _homoglyphs,
            "TextAttack's homoglyph table {path} is missing (its 0.3.11 wheel does not ship it)",
            "run `augshard prepare` (it builds the table from the confusable-homoglyphs package)",
            provision="augshard.methods.provision:write_homoglyph_file",
        ),
        Resource(
            "paragramcf",
            "TextAttack's counter-fitted word embeddings (embedding_path, or TA_CACHE_DIR)",
            _paragramcf,
            "TextAttack's counter-fitted word embeddings (paragramcf) are not available locally; TextAttack would "
            "download them",
            "set embedding_path in the catalogue to a local paragramcf folder (paragram.npy, wordlist.pickle, "
            "nn.npy), e.g. one copied from a connected machine's TextAttack cache",
            folder=True,
            needs="paragram.npy",
            arg="embedding",
            load="augshard.methods.textattack_adapter:counterfitted_embedding",
        ),
        Resource(
            "flair_upos",
            "flair's upos-english-fast part-of-speech model (~/.flair/models)",
            _flair_models,
            "TextAttack tags parts of speech with flair's upos-english-fast model, which is not available offline",
            'on a connected machine run python -c "from flair.models import SequenceTagger; '
            "SequenceTagger.load('flair/upos-english-fast')\" so it lands in ~/.flair/models",
            folder=True,
            required=False,  # flair looks in its own cache; only its error says the model is not there
            markers=("upos-english", ".flair/models"),
        ),
    )
}


def resource(name: str) -> Resource:
    return RESOURCES[name]


def named_by(message: str) -> Resource | None:
    """The resource a library's error message says is missing, if any."""
    return next((r for r in RESOURCES.values() if any(m in message for m in r.markers)), None)


def provision_all(log: Callable[[str], None] = print) -> list[Path]:
    """Build every resource `augshard prepare` can build (each builder is idempotent)."""
    return [_function(r.provision)(log=log) for r in RESOURCES.values() if r.provision is not None]
