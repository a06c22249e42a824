"""permed.preprocess."""
