"""Pushgateway beside the collector: the same per-host series pushed as one group per host."""

from __future__ import annotations

import gzip
import re
import statistics
import subprocess
import tempfile
import time
import urllib.request
from typing import Any

from bench.procstat import rss_mib
from tests.support import wait_for

PUSHGATEWAY = "/usr/bin/prometheus-pushgateway"
PORT = 29091


def timed_get(url: str, repeat: int = 5) -> tuple[float, int, int]:
    """Median seconds of a GET (gzip accepted, as Prometheus asks), raw and gzip'd bytes."""
    times, raw, packed = [], 0, 0
    for _ in range(repeat):
        request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=300) as response:
            body = response.read()
            gz = response.headers.get("Content-Encoding") == "gzip"
        times.append(time.perf_counter() - started)
        packed = len(body)
        raw = len(gzip.decompress(body)) if gz else len(body)
    return statistics.median(times), raw, packed


def ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def per_host_payloads(text: str) -> dict[str, str]:
    """Split the collector's exposition into one push body per host (HELP/TYPE included)."""
    headers: dict[str, list[str]] = {}
    samples: dict[str, dict[str, list[str]]] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            headers.setdefault(line.split()[2], []).append(line)
            continue
        host = re.search(r'host="([^"]+)"', line)
        # Pushgateway reserves the job label (the grouping key); the backup
        # series carry their own, so push it as backup_job: same series count.
        pushed = line.replace(',job="', ',backup_job="')
        if host:
            name = pushed.split("{", 1)[0]
            samples.setdefault(host.group(1), {}).setdefault(name, []).append(pushed)
    return {
        host: "".join(
            "\n".join([*headers.get(name, []), *lines]) + "\n" for name, lines in families.items()
        )
        for host, families in samples.items()
    }


def pushgateway(text: str, budget: float) -> dict[str, Any]:
    """Push each host's series as its own group for up to budget seconds; time pushes and scrape."""
    payloads = per_host_payloads(text)
    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen(
            [PUSHGATEWAY, f"--web.listen-address=127.0.0.1:{PORT}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=tmp,
        )
        base = f"http://127.0.0.1:{PORT}"
        try:
            wait_for(lambda: ok(f"{base}/-/ready"), timeout=30, message="pushgateway")
            started, durations = time.monotonic(), []
            for host, body in payloads.items():
                request = urllib.request.Request(
                    f"{base}/metrics/job/dcguard/instance/{host}", data=body.encode(), method="PUT"
                )
                t0 = time.perf_counter()
                with urllib.request.urlopen(request, timeout=120):
                    pass
                durations.append(time.perf_counter() - t0)
                if time.monotonic() - started > budget:
                    break
            elapsed = time.monotonic() - started
            tail = durations[-100:]
            scrape_s, raw, packed = timed_get(f"{base}/metrics", repeat=3)
            return {
                "groups": len(durations),
                "of": len(payloads),
                "push_s": round(elapsed, 1),
                "push_rate_per_s": round(len(durations) / elapsed, 1),
                "push_rate_at_end_per_s": round(len(tail) / sum(tail), 1),
                "scrape_s": round(scrape_s, 3),
                "bytes": raw,
                "gzip_bytes": packed,
                "rss_mib": round(rss_mib(proc.pid), 1),
            }
        finally:
            proc.terminate()
            proc.wait(30)
