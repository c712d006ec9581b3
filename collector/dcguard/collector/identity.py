"""Who a caller is, once receive/auth.py has decided it: the value every later stage is handed.

Kept apart from the code that decides it, so the store and the back half can
name an identity without importing the receive stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["CertificateStatus", "PeerIdentity"]

# What the registry says of a certificate's serial. "unknown" is not
# "revoked": a registry that never saw the serial was usually replaced (an
# emptied or restored database), and the operator must be told that, not
# that someone revoked the host.
CertificateStatus = Literal["valid", "revoked", "unknown"]


@dataclass(frozen=True)
class PeerIdentity:
    """The authenticated host and department (with mTLS: the certificate's CN and OU)."""

    host: str
    department: str
