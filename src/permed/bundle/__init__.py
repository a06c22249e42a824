"""Save, sign, verify and load trained models; write run directories atomically."""

from permed.bundle._bundle import (
    BUNDLE_DIR,
    bundle_is_encrypted,
    load_bundle,
    read_schema,
    reseal_bundle,
    save_bundle,
)
from permed.bundle._rundir import atomic_directory

__all__ = ["BUNDLE_DIR", "atomic_directory", "bundle_is_encrypted", "load_bundle", "read_schema",
           "reseal_bundle", "save_bundle"]
