"""One router per area of the service; each is thin: parse, call permed.serve._service, return."""

from permed.serve.routers import audit, auth, cds_hooks, explain, fhir, models, predict, users

__all__ = ["audit", "auth", "cds_hooks", "explain", "fhir", "models", "predict", "users"]
