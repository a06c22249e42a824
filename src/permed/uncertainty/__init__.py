"""permed.uncertainty."""
