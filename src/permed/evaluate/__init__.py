"""permed.evaluate."""
