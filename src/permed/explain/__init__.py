"""permed.explain."""
