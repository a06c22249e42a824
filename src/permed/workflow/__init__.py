"""permed.workflow."""
