"""permed.cli."""
