"""The secure ML template's command line: `secure-ml check` and `secure-ml retrofit`."""

__version__ = "0.1.0"
