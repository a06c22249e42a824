"""permed.bundle."""
