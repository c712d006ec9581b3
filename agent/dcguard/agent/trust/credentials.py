"""The agent's TLS credentials at run time: loading them, and renewing the certificate.

This is what `dcguard-agent run` imports, so it stays light: no `ssl` and
no `cryptography` (together about 15 MiB of RSS for the agent's whole
life). The renewer reads its certificate's validity from the DER itself
(common/validity.py); making a key and checking a renewed certificate need
`cryptography`, which is imported only when a renewal is due. Pinning the
collector's CA at enrollment is in trust/pinning.py.
"""

from __future__ import annotations

import datetime
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import grpc

from dcguard.common.config import ConfigError
from dcguard.common.i18n import tr
from dcguard.common.pem import CertificateError, split_bundle, write_private
from dcguard.common.validity import Validity, certificate_validity

__all__ = ["AgentTlsFiles", "Renewer", "load_credentials", "renewal_due"]

log = logging.getLogger(__name__)

# Renew once this share of the certificate's lifetime has passed.
RENEW_AT = 2 / 3


@dataclass(frozen=True)
class AgentTlsFiles:
    """The agent's credentials and CA under state_dir/tls.

    Key and certificate share one file (agent.pem, 0600: certificate, then
    key), replaced in one atomic rename: a crash during renewal leaves the
    old pair or the new pair, never a key with another key's certificate.
    """

    state_dir: Path

    @property
    def directory(self) -> Path:
        return self.state_dir / "tls"

    @property
    def credentials(self) -> Path:
        return self.directory / "agent.pem"

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"

    def store(self, key_pem: bytes, cert_pem: bytes, ca_pem: bytes) -> None:
        """Write the CA, then the certificate and key together."""
        write_private(self.ca, ca_pem, 0o644)
        write_private(self.credentials, cert_pem + key_pem)

    def load(self) -> tuple[bytes, bytes]:
        """(key PEM, certificate PEM); CertificateError if the file is not such a pair."""
        try:
            return split_bundle(self.credentials.read_bytes())
        except CertificateError as exc:
            raise CertificateError(f"{self.credentials} {exc}") from None

    def validity(self) -> Validity:
        """The certificate's validity, read without `cryptography` (see common/validity.py)."""
        return certificate_validity(self.load()[1])


def load_credentials(state_dir: Path, path: Path) -> grpc.ChannelCredentials:
    """mTLS credentials from state_dir; a ConfigError naming the fix if the agent never enrolled."""
    files = AgentTlsFiles(state_dir)
    try:
        key_pem, cert_pem = files.load()
        return grpc.ssl_channel_credentials(
            root_certificates=files.ca.read_bytes(), private_key=key_pem, certificate_chain=cert_pem
        )
    except FileNotFoundError:
        raise ConfigError(
            tr(
                "config {path}: collector.insecure is false, and no TLS credentials are in "
                "{directory}: enroll the agent first (dcguard-agent enroll)",
                path=path,
                directory=files.directory,
            )
        ) from None
    except (OSError, CertificateError) as exc:
        raise ConfigError(
            tr(
                "config {path}: the TLS credentials in {directory} are unusable "
                "({error}): enroll the agent again",
                path=path,
                directory=files.directory,
                error=exc,
            )
        ) from None


def renewal_due(validity: Validity) -> datetime.datetime:
    """When the certificate should be renewed: after RENEW_AT of its lifetime."""
    start, end = validity.not_before, validity.not_after
    return start + (end - start) * RENEW_AT


class Renewer(threading.Thread):
    """Renews the agent's certificate before it expires, over mTLS, in the background.

    On success the new files are written and on_renewed gets the new
    credentials (the sender switches its channel). Failures are retried
    with the interval; they are logged once per episode.
    """

    def __init__(
        self,
        state_dir: Path,
        addresses: tuple[str, ...],
        timeout: float,
        on_renewed: Callable[[grpc.ChannelCredentials], None],
        stop: threading.Event,
        host: str,
    ) -> None:
        super().__init__(name="cert-renewer", daemon=True)
        self._files = AgentTlsFiles(state_dir)
        self._state_dir = state_dir
        self._addresses = addresses
        self._timeout = timeout
        self._on_renewed = on_renewed
        # Not _stop: threading.Thread has a _stop() of its own, which join() calls.
        self._stopping = stop
        self._host = host

    def run(self) -> None:
        failing = False
        while not self._stopping.is_set():
            try:
                validity = self._files.validity()
            except (OSError, CertificateError) as exc:
                log.error("cannot read the agent certificate: %s", exc)
                self._stopping.wait(60)
                continue
            now = datetime.datetime.now(datetime.timezone.utc)
            due = renewal_due(validity)
            lifetime = (validity.not_after - validity.not_before).total_seconds()
            # Check often enough for short lifetimes, at most every 10 minutes.
            pause = max(0.2, min(600.0, lifetime / 50))
            if now < due:
                self._stopping.wait(min(pause, (due - now).total_seconds()))
                continue
            try:
                self.renew_once()
            except (grpc.RpcError, CertificateError, OSError) as exc:
                if not failing:
                    expired = now >= validity.not_after
                    log.error(
                        "certificate renewal failing (%s %s)%s: %s",
                        "expired" if expired else "expires",
                        validity.not_after.isoformat(),
                        "; enroll the agent again with a new token" if expired else "",
                        _describe(exc),
                    )
                failing = True
                self._stopping.wait(pause)
                continue
            if failing:
                log.info("certificate renewal recovered")
            failing = False

    def renew_once(self) -> None:
        """Ask the collector for a new certificate for a new key; store it and hand it on."""
        # Only here does the running agent need X.509: imported when a renewal is due.
        from dcguard.agent.trust.keys import make_key_and_csr
        from dcguard.common.pki import common_name, load_certificate, verify_issued
        from dcguard.v1 import collector_pb2 as pb
        from dcguard.v1 import collector_pb2_grpc as pb_grpc

        credentials = load_credentials(self._state_dir, self._files.credentials)
        key_pem, csr_pem = make_key_and_csr(self._host)
        last: Exception = OSError("no collector address")
        for address in self._addresses:
            with grpc.secure_channel(address, credentials) as channel:
                try:
                    answer = pb_grpc.CollectorStub(channel).Renew(
                        pb.RenewRequest(csr_pem=csr_pem), timeout=self._timeout
                    )
                except grpc.RpcError as exc:
                    last = exc
                    continue
            ca = load_certificate(self._files.ca.read_bytes())
            renewed = load_certificate(answer.certificate_pem)
            verify_issued(renewed, ca, client=True)
            if common_name(renewed) != self._host:
                raise CertificateError(
                    f"the collector renewed a certificate for "
                    f"{common_name(renewed)!r}, not {self._host!r}"
                )
            self._files.store(key_pem, answer.certificate_pem, self._files.ca.read_bytes())
            log.info("certificate renewed via %s", address)
            self._on_renewed(load_credentials(self._state_dir, self._files.credentials))
            return
        raise last


def _describe(exc: Exception) -> str:
    if isinstance(exc, grpc.RpcError):
        return f"{exc.code().name}: {exc.details()}"
    return str(exc)
