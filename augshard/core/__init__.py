"""The plan's vocabulary: settings, combos, planning and fingerprints, errors, column names, version."""
