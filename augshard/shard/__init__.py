"""The worker side: a shard's loop over its combos, its context, work stealing, the pipeline, the quality filter,
encoders, the label check, the method cache."""
