"""Collector at the centre: how many agents one collector carries, side by side with Pushgateway.

For each N in --agents: a fresh collector, the load generator (its own
process) simulating N agents at a 15 s interval for --duration seconds; the
run passes when nothing is lost (every acknowledged report is stored, no
failed call) and p99 Submit latency is under 100 ms. At the largest N it
then measures /metrics scrape time and size, RSS, database growth and
restart time, and loads the same per-host series into Pushgateway to
compare scrape time and push rate. Prints a Markdown table.

    .venv/bin/python bench/collector_scale.py --agents 2500,5000,10000 --duration 60
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.procstat import rss_mib
from tests.support import Collector, parse_metrics, wait_for

PUSHGATEWAY = "/usr/bin/prometheus-pushgateway"


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
        if gz:
            import gzip

            raw = len(gzip.decompress(body))
        else:
            raw = len(body)
    return statistics.median(times), raw, packed


def database_bytes(data_dir: Path) -> int:
    return sum(p.stat().st_size for p in data_dir.glob("collector.db*"))


def run_load(collector: Collector, agents: int, duration: float) -> dict[str, object]:
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "loadgen.py"), "--target", collector.grpc_address,
         "--agents", str(agents), "--duration", str(duration)],
        capture_output=True, text=True, timeout=duration * 4 + 120, check=True)
    load: dict[str, object] = json.loads(result.stdout.strip().splitlines()[-1])
    samples = parse_metrics(collector.metrics_text())
    stored = sum(v for (n, _), v in samples.items() if n == "dcguard_agent_reports_stored_total")
    lost = sum(v for (n, _), v in samples.items() if n == "dcguard_agent_reports_lost_total")
    load.update(stored=int(stored), lost=int(lost),
                zero_loss=not load["failures"] and stored == load["stored_ok"] and lost == 0)
    load["passed"] = bool(load["zero_loss"]) and float(load["p99_ms"]) < 100  # type: ignore[arg-type]
    return load


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
    return {host: "".join("\n".join([*headers.get(name, []), *lines]) + "\n"
                          for name, lines in families.items())
            for host, families in samples.items()}


def pushgateway(text: str, budget: float) -> dict[str, object]:
    """Push each host's series as its own group; time the pushes and the scrape."""
    payloads = per_host_payloads(text)
    with tempfile.TemporaryDirectory() as tmp:
        port = 29091
        proc = subprocess.Popen([PUSHGATEWAY, f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: _ok(f"{base}/-/ready"), timeout=30, message="pushgateway")
            started, durations = time.monotonic(), []
            for host, body in payloads.items():
                request = urllib.request.Request(f"{base}/metrics/job/dcguard/instance/{host}",
                                                 data=body.encode(), method="PUT")
                t0 = time.perf_counter()
                with urllib.request.urlopen(request, timeout=120):
                    pass
                durations.append(time.perf_counter() - t0)
                if time.monotonic() - started > budget:
                    break
            tail = durations[-100:]
            scrape_s, raw, packed = timed_get(f"{base}/metrics", repeat=3)
            return {"groups": len(durations), "of": len(payloads),
                    "push_rate_at_end_per_s": round(len(tail) / sum(tail), 1),
                    "scrape_s": scrape_s, "bytes": raw, "gzip_bytes": packed,
                    "rss_mib": round(rss_mib(proc.pid), 1)}
        finally:
            proc.terminate()
            proc.wait(30)


def _ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--agents", default="2500,5000,10000")
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--push-budget", type=float, default=600)
    args = parser.parse_args()
    rows = []
    largest: tuple[int, Collector, tempfile.TemporaryDirectory[str]] | None = None
    for n in [int(x) for x in args.agents.split(",")]:
        tmp = tempfile.TemporaryDirectory()
        collector = Collector(Path(tmp.name),
                              server_extra='insecure = true\n')
        collector.start()
        load = run_load(collector, n, args.duration)
        assert collector.proc is not None
        load["rss_mib"] = round(rss_mib(collector.proc.pid), 1)
        load["db_bytes"] = database_bytes(collector.data_dir)
        rows.append(load)
        print(json.dumps(load), flush=True)
        if largest is not None:
            largest[1].stop()
            largest[2].cleanup()
        largest = (n, collector, tmp)
        if not load["passed"]:
            break
    assert largest is not None
    n, collector, tmp = largest
    scrape_s, raw, packed = timed_get(collector.metrics_url)
    text = collector.metrics_text()
    collector.stop()
    started = time.monotonic()
    collector.start()
    wait_for(lambda: _ok(collector.metrics_url), timeout=120, message="metrics after restart")
    restart_s = time.monotonic() - started
    collector.stop()
    tmp.cleanup()
    push = pushgateway(text, args.push_budget)
    print(json.dumps({"agents": n, "scrape_s": scrape_s, "bytes": raw, "gzip_bytes": packed,
                      "restart_s": restart_s, "pushgateway": push}))


if __name__ == "__main__":
    main()
