"""Preparing and supervising a run: preflight, the dry run, the supervisor, executors, locks, stopping, the merge at
its end."""
