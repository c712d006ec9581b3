"""/metrics: the page served in pieces, shared by concurrent scrapes, the same after a restart."""

from __future__ import annotations

import gzip
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.realistic import agent as realistic_agent
from bench.realistic import report as realistic_report
from dcguard.collector.config import load_config
from dcguard.collector.exposition.http import MetricsServer
from dcguard.collector.server import CollectorServer
from dcguard.v1 import collector_pb2 as pb
from tests.submit import submit


def get(url: str, gzipped: bool = False) -> tuple[bytes, dict[str, str]]:
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"} if gzipped else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
        headers = dict(response.headers)
    if headers.get("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    return body, headers


def test_pieces_are_served_whole_plain_and_gzipped() -> None:
    pieces = ["# HELP a x\n", 'a{mountpoint="/srv/dữ liệu"} 1\n', "b 2\n" * 300_000, "c 3\n"]
    server = MetricsServer("127.0.0.1", 0, lambda: list(pieces))
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        plain, headers = get(url)
        assert plain == "".join(pieces).encode()
        assert int(headers["Content-Length"]) == len(plain)  # non-ASCII counted in bytes
        packed, headers = get(url, gzipped=True)
        assert headers["Content-Encoding"] == "gzip"
        assert packed == plain
    finally:
        server.stop()


def test_concurrent_scrapes_share_renders_and_never_get_an_older_one() -> None:
    renders: list[float] = []
    lock = threading.Lock()

    def render() -> list[str]:
        with lock:
            renders.append(time.monotonic())
        time.sleep(0.3)
        return [f"render {len(renders)}\n"]

    server = MetricsServer("127.0.0.1", 0, render)
    server.start()
    try:
        url = f"http://127.0.0.1:{server.port}/metrics"
        with ThreadPoolExecutor(8) as pool:
            sent = []
            futures = []
            for _ in range(8):
                sent.append(time.monotonic())
                futures.append(pool.submit(get, url))
            bodies = [f.result()[0] for f in futures]
        # Eight scrapes at once: the first render, then one more for all
        # that arrived while it ran; not one per scrape.
        assert len(renders) <= 2
        for sent_at, body in zip(sent, bodies):  # no scrape got a render older than itself
            number = int(body.split()[1])
            assert renders[number - 1] >= sent_at
        count = len(renders)
        again, _ = get(url)  # nobody waiting: the next scrape renders anew
        assert again == f"render {count + 1}\n".encode()
    finally:
        server.stop()


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "collector.toml"
    path.write_text(
        '[server]\ngrpc_listen = "127.0.0.1:0"\nmetrics_listen = "127.0.0.1:0"\n'
        f'data_dir = "{tmp_path / "data"}"\ninsecure = true\n'
    )
    return path


def _fleet_reports(index: int, now: float) -> list[pb.Report]:
    """Two reports per host, the hosts unlike each other in what they report."""
    reports = []
    for sequence in (1, 2):
        r = realistic_report(sequence, now=now - 30 + 15 * sequence, events=index % 3)
        if index % 4 == 1:
            r.raid_arrays.add(
                name="md0",
                level="raid1",
                state="clean",
                disks_active=1,
                disks_total=2,
                degraded=True,
            )
        if index % 4 == 2:
            r.disks[0].attributes[0].raw = 8
            r.disks[0].attributes[0].failing_now = True
            r.filesystems.add(
                mountpoint="/srv/dữ liệu",
                device="/dev/sdb9",
                fstype="xfs",
                size_bytes=1 << 40,
                avail_bytes=1 << 30,
            )
        if index % 4 == 3:
            del r.backups[:]
        reports.append(r)
    return reports


def _per_host_lines(page: bytes) -> list[str]:
    # Clock-dependent families may change while the collector is down.
    live = ("dcguard_agent_up{", "dcguard_data_loss_risk_score{", "dcguard_data_loss_risk{")
    return [
        line
        for line in page.decode().splitlines()
        if 'host="' in line and not line.startswith(live)
    ]


def test_a_fleet_shows_the_same_per_host_page_after_a_restart(tmp_path: Path) -> None:
    path = _config(tmp_path)
    now = time.time()
    server = CollectorServer(load_config(path))
    server.start()
    try:
        address = f"127.0.0.1:{server.grpc_port}"
        for index in range(12):
            submit(address, _fleet_reports(index, now), realistic_agent(index))
        before, _ = get(f"http://127.0.0.1:{server.metrics_port}/metrics", gzipped=True)
    finally:
        server.stop()
    restarted = CollectorServer(load_config(path))
    restarted.start()
    try:
        after, _ = get(f"http://127.0.0.1:{restarted.metrics_port}/metrics")
    finally:
        restarted.stop()
    lines = _per_host_lines(before)
    assert len({line.split('host="')[1].split('"')[0] for line in lines}) == 12
    assert any("dcguard_security_events_total" in line for line in lines)
    assert any('mountpoint="/srv/dữ liệu"' in line for line in lines)
    assert _per_host_lines(after) == lines
