"""permed.models.risk."""
