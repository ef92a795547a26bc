"""Keep the compiled form of this template's files between generations (a Jinja extension).

Cookiecutter compiles every file it renders into Python code, each time: for this template
that was a quarter of the generation time. Jinja can keep that code in a bytecode cache,
the way Python keeps `__pycache__`; cookiecutter.json's `_extensions` installs this one,
which turns it on. The cache lives in the user's own cache folder (mode 0700):
$XDG_CACHE_HOME/secure-ml-template/jinja, or ~/.cache/secure-ml-template/jinja. Jinja checks
each entry against a checksum of the file's current text and the Python version, so an
edited template is compiled afresh; deleting the folder is always safe. Where the folder
cannot be made, nothing is cached and generation works as before.
"""

from __future__ import annotations

import os
from pathlib import Path

from jinja2 import FileSystemBytecodeCache
from jinja2.ext import Extension


def cache_folder() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "secure-ml-template" / "jinja"


class BytecodeCache(Extension):
    def __init__(self, environment):
        super().__init__(environment)
        try:
            folder = cache_folder()
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            info = folder.stat()
        except (OSError, RuntimeError):  # no home folder, read-only, ...: no cache
            return
        # Only a folder of ours that nobody else can write (on Windows, the profile's own).
        private = not hasattr(os, "getuid") or (info.st_uid == os.getuid() and info.st_mode & 0o077 == 0)
        if private:
            environment.bytecode_cache = FileSystemBytecodeCache(str(folder))
