"""`augshard evaluate`: the leakage-free per-combo evaluation, its options, worker pool, classifiers, statistics and
document."""
