"""Adapter from a TextAttack transformation, wrapped in `textattack.augmentation.Augmenter`, to our protocol."""

from __future__ import annotations

from augshard.errors import MethodError
from augshard.methods.base import PerTextAugmenter, first_text, library_version
from augshard.methods.catalogue import MethodSpec

# Arguments of TextAttack's Augmenter; every other catalogue arg goes to the transformation.
AUGMENTER_ARGS = ("pct_words_to_swap", "transformations_per_example", "high_yield", "fast_augment")
DEFAULT_CONSTRAINTS = ("RepeatModification", "StopwordModification")


class TextAttackAugmenter(PerTextAugmenter):
    """One TextAttack transformation with its pre-transformation constraints.

    augshard draws one candidate per seeded call (transformations_per_example is forced to 1), so every
    variant has its own seed and can be cached and reproduced on its own.
    """

    def __init__(self, spec: MethodSpec) -> None:
        super().__init__(spec, library_version("textattack"))
        from augshard.methods.resources import forbid_nltk_downloads

        forbid_nltk_downloads()
        import textattack.constraints.pre_transformation as pre
        import textattack.transformations as transformations
        from textattack.augmentation import Augmenter

        args = spec.args
        aug_args = {k: args.pop(k) for k in AUGMENTER_ARGS if k in args}
        aug_args["transformations_per_example"] = 1
        constraint_names = args.pop("constraints", list(DEFAULT_CONSTRAINTS))
        cls = getattr(transformations, spec.kind, None)
        if cls is None:
            raise MethodError(f"method '{spec.id}': textattack.transformations has no class '{spec.kind}'")
        constraints = []
        for name in constraint_names:
            ccls = getattr(pre, name, None)
            if ccls is None:
                raise MethodError(f"method '{spec.id}': unknown pre-transformation constraint '{name}'")
            constraints.append(ccls())
        self._aug = Augmenter(transformation=cls(**args), constraints=constraints, **aug_args)

    def _augment_one(self, text: str) -> str:
        return first_text(self._aug.augment(text), text)
