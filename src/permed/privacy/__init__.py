"""permed.privacy."""
