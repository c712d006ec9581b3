"""Keep OpenSSL's libcrypto out of the long-running agent (about 4.5 MiB of RSS).

The agent never uses Python's OpenSSL bindings while it runs: gRPC brings
its own TLS (BoringSSL, linked into grpc's cygrpc). Yet two standard
modules would map the system's libcrypto and initialise OpenSSL anyway:

- `ssl`, which asyncio imports when it can, and grpc's cygrpc imports
  asyncio at load for grpc.aio, which the agent does not use;
- `_hashlib`, hashlib's OpenSSL backend. Without it hashlib uses Python's
  built-in SHA-256: slower per byte (about 175 MB/s against 1.5 GB/s), which
  file-integrity hashing can afford (rate-limited to 20 MiB/s by default,
  cached by file identity) and log-head hashing does not notice.

A None in sys.modules makes an import raise ImportError, which both
importers handle: it is how they behave on a Python built without OpenSSL.
The marks are lifted right after, so a command that needs `ssl` itself
(enroll's CA pinning) imports it as usual; only asyncio, unused here, keeps
running without it. If this Python has no built-in SHA-256 (some FIPS
builds), hashlib is loaded with OpenSSL after all.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["load_without_libcrypto"]


@contextmanager
def _unimportable(*names: str) -> Iterator[None]:
    """While inside, importing any of names (not yet imported) raises ImportError."""
    marked = [name for name in names if name not in sys.modules]
    for name in marked:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        for name in marked:
            if sys.modules.get(name, ...) is None:
                del sys.modules[name]


def _has_builtin_sha256() -> bool:
    # _sha256 up to Python 3.11, _sha2 from 3.12.
    return any(importlib.util.find_spec(name) is not None for name in ("_sha256", "_sha2"))


def load_without_libcrypto() -> None:
    """Import grpc and hashlib without ssl and _hashlib; call before anything imports them."""
    if _has_builtin_sha256():
        with _unimportable("_hashlib"):
            import hashlib  # noqa: F401
    with _unimportable("ssl"):
        import grpc  # noqa: F401
