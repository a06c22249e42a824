"""permed.models."""
