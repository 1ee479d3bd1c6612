"""`augshard export`: one training set from a run, its facts (export.json) and its dataset card."""
