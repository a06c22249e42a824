"""permed: learn, validate and serve diagnose, risk and treat answers about one patient."""

__version__ = "0.1.0"
__all__ = ["__version__"]
