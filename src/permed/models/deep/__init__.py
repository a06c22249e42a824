"""permed.models.deep."""
