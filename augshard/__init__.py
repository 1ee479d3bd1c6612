"""augshard: many augmented variants of a labelled text dataset, sharded, resumable and deterministic."""

__version__ = "0.1.0"
