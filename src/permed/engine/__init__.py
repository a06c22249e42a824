"""permed.engine."""
