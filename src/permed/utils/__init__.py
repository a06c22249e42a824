"""permed.utils."""
