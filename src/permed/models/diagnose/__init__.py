"""permed.models.diagnose."""
