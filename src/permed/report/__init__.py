"""permed.report."""
