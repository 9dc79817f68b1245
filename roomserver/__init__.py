"""roomserver: a standalone async Matrix roomserver."""

__version__ = "0.1.0"
