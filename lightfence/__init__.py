"""Lightfence: delay-based location verification for export-controlled AI chips."""

__version__ = "0.1.0"
