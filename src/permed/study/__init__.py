"""permed.study."""
