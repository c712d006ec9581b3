"""The dcguard version: the one place it is written.

pyproject.toml reads it from here (`[tool.setuptools.dynamic]`), and so does
deploy/make-bundle.sh. A constant rather than `importlib.metadata`: that
import costs the long-running agent about 1.5 MiB of RSS (email, zipfile,
…) for one string, and works only when the package is installed.
"""

from __future__ import annotations

__all__ = ["VERSION", "__version__"]

__version__ = "0.1.0"
VERSION = __version__
