"""Save, verify and load trained models; write run directories atomically."""

from permed.bundle._bundle import BUNDLE_DIR, load_bundle, read_schema, save_bundle
from permed.bundle._rundir import atomic_directory

__all__ = ["BUNDLE_DIR", "atomic_directory", "load_bundle", "read_schema", "save_bundle"]
