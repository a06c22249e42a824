"""permed.models.treat."""
