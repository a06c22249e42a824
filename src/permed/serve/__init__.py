"""permed.serve."""
