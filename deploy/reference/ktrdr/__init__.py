"""Reference ktrdr service (see deploy/reference/README.md)."""

__version__ = "0.1.0"
