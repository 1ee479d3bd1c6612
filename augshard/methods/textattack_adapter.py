"""Adapter from a TextAttack transformation, wrapped in `textattack.augmentation.Augmenter`, to our protocol."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from augshard.core.errors import MethodError
from augshard.methods.base import PerTextAugmenter, first_text
from augshard.methods.models import (
    MethodUnavailable,
    model_max_positions,
    resolve_device,
    resolve_model,
)
from augshard.methods.offline import forbid_nltk_downloads
from augshard.methods.registry import Family, import_class, method_version
from augshard.methods.resources import resource
from augshard.methods.spec import MethodSpec

# Arguments of TextAttack's Augmenter; every other catalogue arg goes to the transformation.
AUGMENTER_ARGS = ("pct_words_to_swap", "transformations_per_example", "high_yield", "fast_augment")
DEFAULT_CONSTRAINTS = ("RepeatModification", "StopwordModification")


class TextAttackAdapter:
    """Builds any registered TextAttack transformation; one that batches (BAE) shares model passes across texts."""

    @staticmethod
    def build(spec: MethodSpec, fam: Family, device: str = "auto") -> object:
        if fam.batching is not None and fam.batching.size(spec.args) is not None:
            return TextAttackMaskedLM(spec, fam, device)
        return TextAttackAugmenter(spec, fam, device)


class TextAttackAugmenter(PerTextAugmenter):
    """One TextAttack transformation with its pre-transformation constraints.

    augshard draws one candidate per seeded call (transformations_per_example is forced to 1), so every
    variant has its own seed and can be cached and reproduced on its own.
    """

    def __init__(self, spec: MethodSpec, fam: Family, device: str = "auto") -> None:
        super().__init__(spec, method_version(spec))

        forbid_nltk_downloads()
        if device != "auto" and spec.requires_gpu:
            _use_device(device)
        import textattack.constraints.pre_transformation as pre
        from textattack.augmentation import Augmenter

        args = spec.args
        aug_args = {k: args.pop(k) for k in AUGMENTER_ARGS if k in args}
        aug_args["transformations_per_example"] = 1
        constraint_names = args.pop("constraints", list(DEFAULT_CONSTRAINTS))
        try:
            cls = import_class(fam)
        except (ImportError, AttributeError):
            raise MethodError(f"method '{spec.id}': TextAttack has no class '{fam.cls}'") from None
        constraints = []
        for name in constraint_names:
            ccls = getattr(pre, name, None)
            if ccls is None:
                raise MethodError(f"method '{spec.id}': unknown pre-transformation constraint '{name}'")
            constraints.append(ccls())
        batched = fam.batching is not None and fam.batching.size(args) is not None
        args = _local_resources(spec, fam, args)
        self.texts_per_batch = int(args.pop("texts_per_batch", 8))
        if batched:
            cls = _cross_text_batched(cls)
        self._aug = Augmenter(transformation=cls(**args), constraints=constraints, **aug_args)
        self._draw_one = _draws_one_at_a_time(self._aug)
        _memoize_lookups(self._aug.transformation)
        remember_words()

    def _augment_one(self, text: str) -> str:
        if self._draw_one:
            return augment_drawing_one(self._aug, text)
        return first_text(self._aug.augment(text), text)


def _draws_one_at_a_time(aug: object) -> bool:
    """Whether TextAttack's loop reduces to: list every one-word change of the current text, draw one, repeat.

    That holds with one transformation per example, no post-transformation constraints and neither high_yield
    nor fast_augment, which is how augshard builds its augmenters.
    """
    return (
        aug.transformations_per_example == 1
        and not aug.constraints
        and not aug.high_yield
        and not aug.fast_augment
        and not getattr(aug, "advanced_metrics", False)
    )


def augment_drawing_one(aug: object, text: str) -> str:
    """TextAttack's `Augmenter.augment` for that case, with the same draws from the same RNG, except that of the
    candidate texts it lists at each step only the one drawn is built (building them all was ~70% of the time).
    """
    import random

    from textattack.shared import AttackedText

    current = AttackedText(text)
    words_to_swap = max(int(aug.pct_words_to_swap * len(current.words)), 1)
    swapped = len(current.attack_attrs["modified_indices"])
    while swapped < words_to_swap:
        candidates = _candidates(aug.transformation, current, aug.pre_transformation_constraints)
        if not len(candidates):
            break
        current = random.choice(candidates)
        swapped = max(len(current.attack_attrs["modified_indices"]), swapped + 1)
    return current.printable_text()


class _Candidates:
    """The list a transformation would return, as recipes: an element is built only when it is read."""

    def __init__(self, transformation: object, recipes: list, build: Callable[[Any], Any]) -> None:
        self.transformation = transformation
        self.recipes = recipes
        self.build = build

    def __len__(self) -> int:
        return len(self.recipes)

    def __getitem__(self, i: int) -> Any:  # an AttackedText
        text = self.build(self.recipes[i])
        text.attack_attrs["last_transformation"] = self.transformation  # as Transformation.__call__ does
        return text


def _candidates(transformation: Any, current: Any, constraints: Any) -> Any:
    """The candidates of one step, lazily for the transformations whose listing augshard mirrors (their
    replacement words are looked up in the very same order, so the RNG sees the same draws); any other
    transformation lists them itself."""
    import random

    from textattack.transformations import WordDeletion, WordInsertionRandomSynonym, WordSwap

    listing = type(transformation)._get_transformations
    indices = transformation(current, constraints, return_indices=True)
    if listing is WordSwap._get_transformations:
        words = current.words
        recipes = []
        for i in indices:
            for r in transformation._get_replacement_words(words[i]):
                if r == words[i]:
                    continue
                if not isinstance(r, str):
                    raise TypeError(f"replace_word_at_index requires ``str`` new_word, got {type(r)}")
                recipes.append((i, r))
        return _Candidates(transformation, recipes, lambda ir: current.replace_word_at_index(*ir))
    if listing is WordDeletion._get_transformations:
        recipes = list(indices) if len(current.words) > 1 else []
        return _Candidates(transformation, recipes, current.delete_word_at_index)
    if listing is WordInsertionRandomSynonym._get_transformations:
        recipes = []
        for i in indices:
            for attempt in range(7):
                synonyms = transformation._get_synonyms(random.choice(current.words))
                if synonyms:
                    break
                if attempt == 6:
                    return _Candidates(transformation, [None], lambda _: current)
            recipes.append((i, random.choice(synonyms)))
        return _Candidates(transformation, recipes, lambda iw: current.insert_text_before_word_index(*iw))
    return transformation(current, constraints)


WORDS_REMEMBERED = 1 << 16  # texts and words whose split is kept (each a few hundred bytes)


def remember_words() -> None:
    """TextAttack splits every word of a text into words again each time it builds a changed text
    (`AttackedText.generate_new_attacked_text`: two regex passes per word of every changed text; bench L measures
    a word swap 2.4x faster without them). `words_from_text` is a pure function of its arguments, so the splits
    `attacked_text` asks for are remembered (bounded, handed out as fresh lists): the same words, in the same order,
    for the same draws."""
    import functools

    from textattack.shared import attacked_text

    split = attacked_text.words_from_text
    if getattr(split, "remembered", False):
        return

    @functools.lru_cache(maxsize=WORDS_REMEMBERED)
    def cached(s: str, ignore: tuple) -> tuple[str, ...]:
        return tuple(split(s, list(ignore)))

    def words_from_text(s: str, words_to_ignore: Any = ()) -> list[str]:
        return list(cached(s, tuple(words_to_ignore)))

    words_from_text.remembered = True  # type: ignore[attr-defined]
    attacked_text.words_from_text = words_from_text


def _memoize_lookups(transformation: object) -> None:
    """WordNet lookups are pure functions of the word: remember them per augmenter (the lists keep their order)."""
    from textattack.transformations import WordInsertionRandomSynonym, WordSwapWordNet

    if isinstance(transformation, WordSwapWordNet):
        name = "_get_replacement_words"
    elif isinstance(transformation, WordInsertionRandomSynonym):
        name = "_get_synonyms"
    else:
        return
    lookup, memo = getattr(transformation, name), {}

    def remembered(word: str, *args: Any, **kwargs: Any) -> list:
        if args or kwargs:
            return lookup(word, *args, **kwargs)
        if word not in memo:
            memo[word] = lookup(word)
        return list(memo[word])

    setattr(transformation, name, remembered)


class TextAttackMaskedLM(TextAttackAugmenter):
    """ta_mlm_* (BAE): one batched model pass over every masked word of a batch of texts, then TextAttack's own
    per-text search reads its predictions from there; only later swaps of a longer text call the model again.

    Predictions depend slightly on what else is padded into the batch, so outputs depend on the batch: it is
    keyed into the cache (`batch_dependent`) and always formed the same way by the pipeline.
    """

    batch_dependent = True

    @property
    def batch_size(self) -> int:
        return self.texts_per_batch

    def augment(self, texts: list[str], seeds: list[int]) -> list[str | Exception]:
        transformation = self._aug.transformation
        out: list[str | Exception] = []
        for start in range(0, len(texts), self.texts_per_batch):
            batch = texts[start : start + self.texts_per_batch]
            try:
                transformation.prefetch(batch, self._aug.pre_transformation_constraints)
            except Exception as exc:  # noqa: BLE001 - the batch's rows fail, the combo goes on
                out += [exc] * len(batch)
                continue
            out += super().augment(batch, seeds[start : start + self.texts_per_batch])
            transformation.forget()
        return out


def _cross_text_batched(cls: type) -> type:
    """A WordSwapMaskedLM whose BAE predictions for many texts come from shared model batches."""
    from types import SimpleNamespace

    from textattack.shared import AttackedText

    class CrossTextMaskedLM(cls):  # type: ignore[misc, valid-type]
        _predicted: dict[str, list[str]]

        def prefetch(self, texts: list[str], constraints: list) -> None:
            masked: list[str] = []
            mask = self._lm_tokenizer.mask_token
            for text in texts:
                current = AttackedText(text)
                indices = set(range(len(current.words)))
                for constraint in constraints:
                    indices &= set(constraint(current, self))
                masked += [current.replace_word_at_index(i, mask).text for i in sorted(indices)]
            self._predicted = {}
            self._predict(list(dict.fromkeys(masked)))

        def forget(self) -> None:
            self._predicted = {}

        def _predict(self, masked: list[str]) -> None:
            # TextAttack's own batched BAE loop, fed with masked texts of many texts at once.
            many = SimpleNamespace(replace_word_at_index=lambda i, _token: SimpleNamespace(text=masked[i]))
            words = super()._bae_replacement_words(many, range(len(masked)))
            self._predicted.update(zip(masked, words, strict=True))

        def _bae_replacement_words(self, current_text: Any, indices_to_modify: Any) -> list:
            mask = self._lm_tokenizer.mask_token
            masked = [current_text.replace_word_at_index(i, mask).text for i in indices_to_modify]
            predicted = getattr(self, "_predicted", {})
            todo = [m for m in dict.fromkeys(masked) if m not in predicted]
            if todo:
                self._predicted = predicted
                self._predict(todo)
            return [self._predicted[m] for m in masked]

    CrossTextMaskedLM.__name__ = cls.__name__
    return CrossTextMaskedLM


def _use_device(device: str) -> None:
    """TextAttack puts its models on `textattack.shared.utils.device` (CUDA when it sees one): the run's device."""
    import torch
    from textattack.shared import utils

    utils.device = torch.device(resolve_device(device))


def _local_resources(spec: MethodSpec, fam: Family, args: dict) -> dict:
    """Point TextAttack's model-backed transformations at local copies, and hand each resource the family reads to
    it as `methods.resources` declares; say what is missing otherwise."""
    if fam.model_arg:
        path = resolve_model(fam.model(spec))
        args[fam.model_arg] = path
        positions = model_max_positions(path)
        if positions:
            args["max_length"] = min(int(args.get("max_length", 512)), positions)
    for res in map(resource, fam.data):
        if res.arg is not None and res.arg in args:
            continue  # the catalogue entry gives it itself
        if res.required and not res.present(spec):
            raise MethodUnavailable(res.reason(spec), res.fix)
        if res.arg is not None:
            args[res.arg] = res.loaded(spec)
    return args


def counterfitted_embedding(folder: Path) -> object:
    """TextAttack downloads its counter-fitted GloVe vectors on first use; augshard loads a local copy only."""
    import numpy as np
    from textattack.shared import WordEmbedding

    matrix = np.load(folder / "paragram.npy")
    word2index = np.load(folder / "wordlist.pickle", allow_pickle=True)
    index2word = {i: w for w, i in word2index.items()}
    nn_matrix = np.load(folder / "nn.npy") if (folder / "nn.npy").is_file() else None
    return WordEmbedding(matrix, word2index, index2word, nn_matrix)
