"""Client certificates for N simulated agents, issued by a collector's own CA and registry.

The load generator speaks mTLS as enrolled agents do, so each simulated
agent needs what enrollment leaves on a real one: its own EC P-256 key and a
client certificate the collector's CA signed for its host and department,
recorded in the collector's registry (an unrecorded serial is refused as
"unknown certificate"). This does what `dcguard-agent enroll` and the
collector's Enroll call do together, without the network round trip: the
agent's key code (make_key_and_csr), the collector's CA (CertificateAuthority.
issue) and registry (EnrollmentRegistry.record_certificate), so the store may
be SQLite or PostgreSQL, whatever the collector's config names.

Certificates are cached in --out (keys included: a temp dir, never
committed): a second run reuses them and only records in the registry the
serials it does not know yet (a fresh collector database).

    python bench/agent_certs.py --config collector.toml --agents 10000 --out /tmp/certs

Hosts are srv00000, srv00001, … in departments dept00…dept39, as
bench/realistic.agent(i) names them. --out gets ca.crt (the CA to trust) and
<host>.key / <host>.crt per agent.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import sys
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.realistic import agent
from dcguard.agent.trust.keys import make_key_and_csr
from dcguard.collector.config import load_config
from dcguard.collector.store import report_store
from dcguard.collector.trust.ca import CertificateAuthority, TlsFiles
from dcguard.collector.trust.registry import EnrollmentRegistry

__all__ = ["cert_paths", "mint"]

LIFETIME = datetime.timedelta(days=30)


def cert_paths(directory: Path, host: str) -> tuple[Path, Path]:
    """Where host's key and certificate are kept in a cert directory."""
    return directory / f"{host}.key", directory / f"{host}.crt"


def _write_key(path: Path, data: bytes) -> None:
    """A key created 0600 from the start; no fsync: a cache, thousands of files."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def mint(config_path: Path, agents: int, out: Path) -> dict[str, float]:
    """Issue (or reuse) certificates for agents 0..agents-1 and record every one in the registry.

    Returns how many were issued and recorded, and the seconds it took.
    """
    started = time.monotonic()
    config = load_config(config_path)
    files = TlsFiles(config.tls_dir)
    authority = CertificateAuthority(files)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(files.ca_cert, out / "ca.crt")
    store = report_store(config.database)
    store.open()  # creates and migrates the database, as `token create` does
    store.close()
    registry = EnrollmentRegistry(config.database)
    registry.open()
    issued = recorded = 0
    try:
        for i in range(agents):
            info = agent(i)
            key_path, cert_path = cert_paths(out, info.host)
            if cert_path.exists():
                cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
                if cert.issuer != authority.cert.subject:
                    raise SystemExit(f"{out} holds certificates of another CA: give an empty --out")
            else:
                key_pem, csr_pem = make_key_and_csr(info.host)
                cert = authority.issue(csr_pem, info.host, info.department, LIFETIME)
                _write_key(key_path, key_pem)
                cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
                issued += 1
            if registry.certificate_status(cert.serial_number) == "unknown":
                registry.record_certificate(
                    cert.serial_number,
                    info.host,
                    info.department,
                    cert.not_valid_after_utc.timestamp(),
                )
                recorded += 1
    finally:
        registry.close()
    return {
        "issued": issued,
        "recorded": recorded,
        "seconds": round(time.monotonic() - started, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True, help="the collector's config")
    parser.add_argument("--agents", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True, help="cert directory (cache)")
    args = parser.parse_args()
    print(mint(args.config, args.agents, args.out))


if __name__ == "__main__":
    main()
