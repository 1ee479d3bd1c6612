"""Files on disk: atomic temporaries, the output-path rule, combo folders and meta.json, vectors, manifests, input
reading, verify."""
