"""Who a caller is, once receive/auth.py has decided it: the value every later stage is handed.

Kept apart from the code that decides it, so the store and the back half can
name an identity without importing the receive stage.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["PeerIdentity"]


@dataclass(frozen=True)
class PeerIdentity:
    """The authenticated host and department (with mTLS: the certificate's CN and OU)."""

    host: str
    department: str
