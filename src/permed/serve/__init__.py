"""The prediction service: trained runs behind an authenticated, audited HTTP API.

>>> from permed.serve import Settings, create_app, parse_runs
>>> app = create_app(Settings(runs=parse_runs(["runs/heart"])))  # doctest: +SKIP

Run it with ``permed serve runs/heart --port 8000`` (uvicorn). See docs/serve.md for the
endpoints, roles, FHIR mapping, CDS Hooks and the clinician web page.
"""

from permed.serve._app import create_app
from permed.serve._audit import AuditTrail
from permed.serve._settings import ENV_DATABASE, ROLES, Settings, default_data_dir, parse_runs
from permed.serve._storage import Principal, Storage

__all__ = ["ENV_DATABASE", "ROLES", "AuditTrail", "Principal", "Settings", "Storage",
           "create_app", "default_data_dir", "parse_runs"]
