"""permed.ingest."""
