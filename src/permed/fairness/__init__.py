"""permed.fairness."""
