"""The registry of method families: one entry per library class augshard runs, one adapter per library."""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from augshard.core.config import _load_yaml
from augshard.core.environment import library_version
from augshard.core.errors import ConfigError, MethodError
from augshard.methods.base import Augmenter
from augshard.methods.imports import import_module
from augshard.methods.resources import RESOURCES
from augshard.methods.spec import MethodSpec

# The adapter of each library, as "module:Class" (imported only when a method of the library is built).
ADAPTERS = {
    "nlpaug": "augshard.methods.nlpaug_adapter:NlpaugAdapter",
    "textattack": "augshard.methods.textattack_adapter:TextAttackAdapter",
}
# The libraries whose versions decide what a method makes or whether it can run (meta.json records them).
LIBRARIES = ("nlpaug", "textattack", "transformers", "torch", "nltk")
# Files of extra registry entries (os.pathsep-separated YAML lists), read by every augshard process.
FAMILIES_ENV = "AUGSHARD_FAMILIES"
FAMILY_KEYS = {"lib", "cls", "batching", "versions", "nltk", "model_arg", "model_default", "data", "actions"}

_WORDNET = ("corpora/wordnet", "taggers/averaged_perceptron_tagger_eng")
_TA = ("corpora/stopwords",)  # `import textattack` loads the English stopword list


@dataclass(frozen=True)
class Batching:
    """A method that draws for a whole batch: the arg giving its batch size, and its default. With `only_if`
    (arg, its default, value), the method batches only when that arg has that value."""

    arg: str
    default: int
    only_if: tuple[str, str, str] | None = None

    def size(self, args: dict[str, Any]) -> int | None:
        """The batch size `args` give, or None when the method does not batch with them."""
        if self.only_if is not None:
            name, default, value = self.only_if
            if args.get(name, default) != value:
                return None
        return int(args.get(self.arg, self.default))


@dataclass(frozen=True)
class Family:
    """Everything augshard needs to know about one library class: where it lives, how it batches, which library
    versions decide its outputs, what it reads offline, and which `action`s it has."""

    lib: str
    cls: str  # the fully qualified class
    batching: Batching | None = None
    versions: tuple[str, ...] = ()  # libraries besides `lib` whose versions decide its outputs
    nltk: tuple[str, ...] = ()  # NLTK resources it reads (keys of offline.REQUIRED_NLTK)
    model_arg: str | None = None  # the arg naming its Hugging Face model (a hub name or a local folder)
    model_default: str = ""
    data: tuple[str, ...] = ()  # other local data it reads (keys of methods.resources.RESOURCES)
    # Modules its build reads besides its class's module (deferred by methods.imports until then): a forkserver
    # preloads them with the class's module.
    imports: tuple[str, ...] = ()
    actions: tuple[str, tuple[str, ...]] | None = None  # (default action, the actions it has)
    unsupported: tuple[str, str] | None = None  # (reason, fix): named by catalogues, never run by augshard
    extra: bool = field(default=False, compare=False)  # registered from an AUGSHARD_FAMILIES file

    @property
    def modules(self) -> tuple[str, ...]:
        """What building it imports: its class's module, then `imports` (what a forkserver preloads for it)."""
        return (self.cls.rpartition(".")[0], *self.imports)

    @property
    def kind(self) -> str:
        """The name a catalogue entry's `kind` gives: the class name."""
        return self.cls.rsplit(".", 1)[-1]

    def model(self, spec: MethodSpec) -> str | None:
        """The model the method loads: the entry's model_path, else its model arg, else the family's default."""
        if self.model_arg is None:
            return None
        return spec.model_path or spec.args.get(self.model_arg, self.model_default)


def _nlpaug(module: str, name: str, **kw: Any) -> Family:
    return Family("nlpaug", f"nlpaug.augmenter.{module}.{name}", **kw)


def _ta(name: str, nltk: tuple[str, ...] = (), **kw: Any) -> Family:
    return Family("textattack", f"textattack.transformations.{name}", nltk=(*_TA, *nltk), **kw)


FAMILIES: tuple[Family, ...] = (
    # --- nlpaug, characters
    _nlpaug("char", "RandomCharAug"),
    _nlpaug("char", "KeyboardAug"),
    _nlpaug("char", "OcrAug"),
    # --- nlpaug, words
    _nlpaug("word", "RandomWordAug", actions=("delete", ("substitute", "swap", "delete", "crop"))),
    _nlpaug("word", "SynonymAug", nltk=_WORDNET, imports=("nlpaug.model.word_dict",)),
    _nlpaug("word", "AntonymAug", nltk=_WORDNET, imports=("nlpaug.model.word_dict",)),
    _nlpaug("word", "SpellingAug", imports=("nlpaug.model.word_dict.spelling",)),
    _nlpaug("word", "SplitAug"),
    _nlpaug("word", "ReservedAug"),
    _nlpaug(
        "word",
        "ContextualWordEmbsAug",
        batching=Batching("batch_size", 32),
        versions=("transformers",),
        model_arg="model_path",
        model_default="roberta-base",
        imports=("nlpaug.model.lang_models",),
    ),
    _nlpaug(
        "word",
        "BackTranslationAug",
        unsupported=(
            "augshard does not run nlpaug's BackTranslationAug: its two translation models are downloaded by nlpaug "
            "at run time, and nothing downloads at run time",
            "remove the entry from the method catalogue",
        ),
    ),
    # --- TextAttack transformations (wrapped in its Augmenter)
    _ta("WordSwapQWERTY"),
    _ta("WordSwapNeighboringCharacterSwap"),
    _ta("WordSwapRandomCharacterDeletion"),
    _ta("WordSwapRandomCharacterInsertion"),
    _ta("WordSwapRandomCharacterSubstitution"),
    _ta("WordDeletion"),
    _ta("WordSwapWordNet", nltk=("corpora/wordnet", "taggers/universal_tagset")),
    _ta("WordInsertionRandomSynonym", nltk=("corpora/wordnet",)),
    _ta("WordSwapInflections", data=("flair_upos",)),
    _ta("WordSwapContract"),
    _ta("WordSwapHomoglyphSwap", data=("homoglyph_table",)),
    _ta("WordSwapEmbedding", data=("paragramcf",)),
    _ta(
        "WordSwapMaskedLM",
        batching=Batching("texts_per_batch", 8, only_if=("method", "bae", "bae")),
        model_arg="masked_language_model",
        model_default="bert-base-uncased",
    ),
)

_REGISTRY: dict[tuple[str, str], Family] | None = None
_REGISTRY_ENV: str | None = None


def registry() -> dict[tuple[str, str], Family]:
    """Every family by (lib, kind): the built-in ones, then those of the AUGSHARD_FAMILIES files."""
    global _REGISTRY, _REGISTRY_ENV
    env = os.environ.get(FAMILIES_ENV, "")
    if _REGISTRY is None or env != _REGISTRY_ENV:
        table = {(f.lib, f.kind): f for f in FAMILIES}
        for path in (p for p in env.split(os.pathsep) if p):
            for family in read_families(Path(path)):
                table[(family.lib, family.kind)] = family
        _REGISTRY, _REGISTRY_ENV = table, env
    return _REGISTRY


def family(lib: str, kind: str) -> Family | None:
    """The registry entry of a library class, or None when augshard does not run it."""
    return registry().get((lib, kind))


def require_family(spec: MethodSpec) -> Family:
    """The registry entry a catalogue entry names; an unknown class is a MethodError saying what is supported."""
    found = family(spec.lib, spec.kind)
    if found is None:
        supported = sorted(kind for lib, kind in registry() if lib == spec.lib)
        raise MethodError(
            f"method '{spec.id}': {spec.lib} class '{spec.kind}' is not in augshard's method registry "
            f"(supported: {', '.join(supported)}; see 'Adding a method' in docs/methods.md)"
        )
    return found


def build(spec: MethodSpec, device: str = "auto") -> Augmenter:
    """The library object of one catalogue entry, built by its library's adapter (heavy imports happen there)."""
    fam = require_family(spec)
    module, _, name = ADAPTERS[fam.lib].partition(":")
    adapter = getattr(importlib.import_module(module), name)
    return adapter.build(spec, fam, device)


def import_class(fam: Family) -> type:
    """The library class of a family."""
    module, _, name = fam.cls.rpartition(".")
    return getattr(import_module(module), name)  # what the module imports for its other classes only is deferred


def unsupported(lib: str, kind: str, args: dict[str, Any]) -> tuple[str, str] | None:
    """Why a method of a registered family cannot run (an action its class lacks, a family augshard never runs),
    and the fix; None otherwise (an unknown class is reported when it is built)."""
    fam = family(lib, kind)
    if fam is None:
        return None
    if fam.unsupported is not None:
        return fam.unsupported
    if fam.actions is not None:
        default, actions = fam.actions
        action = args.get("action", default)
        if action not in actions:
            return (
                f"{lib}'s {kind} has no '{action}' action (it has {', '.join(actions)})",
                f"set 'action' to one of {', '.join(actions)} in the method catalogue, or remove the entry",
            )
    return None


def read_families(path: Path) -> list[Family]:
    """Extra registry entries from a YAML list (see 'Adding a method' in docs/methods.md); each problem is one
    ConfigError naming the file and the entry."""
    if not path.is_file():
        raise ConfigError(f"{FAMILIES_ENV}: registry file not found: {path}")
    data = _load_yaml(path)
    entries = data.get("families") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: expected a list under 'families'")
    out = []
    for n, entry in enumerate(entries, start=1):
        where = f"{path}: family {n}"
        if not isinstance(entry, dict) or not isinstance(entry.get("cls"), str) or entry.get("lib") not in ADAPTERS:
            raise ConfigError(f"{where}: expected a mapping with lib ({', '.join(ADAPTERS)}) and cls (a class path)")
        unknown = sorted(set(entry) - FAMILY_KEYS)
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(unknown)} (allowed: {', '.join(sorted(FAMILY_KEYS))})"
            )
        if not entry["cls"].startswith(entry["lib"] + "."):
            raise ConfigError(f"{where}: cls '{entry['cls']}' is not a {entry['lib']} class")
        unknown = sorted(set(entry.get("data") or ()) - set(RESOURCES))
        if unknown:
            raise ConfigError(f"{where}: unknown data {', '.join(unknown)} (known: {', '.join(sorted(RESOURCES))})")
        batching = entry.get("batching")
        actions = entry.get("actions")
        out.append(
            Family(
                lib=entry["lib"],
                cls=entry["cls"],
                batching=Batching(batching["arg"], int(batching["default"])) if batching else None,
                versions=tuple(entry.get("versions") or ()),
                nltk=tuple(entry.get("nltk") or ()),
                model_arg=entry.get("model_arg"),
                model_default=str(entry.get("model_default", "")),
                data=tuple(entry.get("data") or ()),
                actions=(actions[0], tuple(actions)) if actions else None,
                extra=True,
            )
        )
    return out


def method_version(spec: MethodSpec) -> str:
    """The library versions that decide a method's outputs (part of every cache key): its library's, then those
    its registry entry names (`versions`)."""
    fam = family(spec.lib, spec.kind)
    return "+".join(library_version(lib) for lib in (spec.lib, *(fam.versions if fam else ())))
