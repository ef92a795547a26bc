"""Secure ML project package: pipeline stages, model I/O, tracking and guarded inference."""

__version__ = "0.1.0"
