"""How much the storage, backup and risk groups cost a /metrics scrape and a report.

Run: .venv/bin/python -m bench.bench_risk_scrape [hosts]
Builds N hosts with typical reports (5 filesystems, 2 disks, 1 array, 2 jobs),
then times a full per-host render (what a report costs) and a scrape
(render_live of every host + joining fragments), with and without risk.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from dcguard.collector.config import load_config
from dcguard.collector.exposition.families.registry import HostRenderer, default_groups
from dcguard.collector.exposition.families.risk import RiskGroup
from dcguard.collector.exposition.hosts import StateCache
from tests.storage_reports import GIB, REALLOCATED_304, ata_disk, backup, fs, raid, record, report


def main() -> None:
    hosts = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    now = time.time()
    tmp = tempfile.TemporaryDirectory()  # the defaults, as a collector reads them
    path = Path(tmp.name) / "collector.toml"
    path.write_text(
        f'[server]\ninsecure = true\ngrpc_listen = "127.0.0.1:0"\n'
        f'metrics_listen = "127.0.0.1:0"\ndata_dir = "{tmp.name}"\n'
    )
    config = load_config(path)
    records = []
    for i in range(hosts):
        r = report(
            collected_at=now,
            filesystems=[fs(f"/m{j}", avail=(10 + j) * GIB) for j in range(5)],
            disks=[
                ata_disk("/dev/sda", "ST3500418AS", f"S{i}", REALLOCATED_304),
                ata_disk("/dev/sdb", "WDC", f"W{i}"),
            ],
            raid_arrays=[raid("md0", active=1 if i % 10 == 0 else 2)],
            backups=[
                backup("db", last_success=now - (i % 48) * 3600),
                backup("files", last_success=now - 3600, same_device=i % 3 == 0),
            ],
        )
        records.append(record(r, host=f"host{i:05d}", department=f"dept{i % 40}", last_seen=now))
    for label, groups in (
        ("all groups", default_groups(config)),
        ("without risk", [g for g in default_groups(config) if not isinstance(g, RiskGroup)]),
    ):
        state = StateCache(HostRenderer(groups))
        start = time.perf_counter()
        state.load(records)
        loaded = time.perf_counter() - start
        start = time.perf_counter()
        rounds = 5
        for _ in range(rounds):
            text = state.render(now + 60)
        scrape = (time.perf_counter() - start) / rounds
        start = time.perf_counter()
        for _ in range(rounds):
            for h in state.snapshot():
                state.renderer.render_live(h.record, now + 60)
        live = (time.perf_counter() - start) / rounds
        print(
            f"{label:>13}: {hosts} hosts, render per report {loaded / hosts * 1e6:.0f} us, "
            f"scrape {scrape * 1000:.0f} ms (clock-dependent part {live * 1000:.0f} ms), "
            f"{len(text) / 1e6:.1f} MB, "
            f"{text.count(chr(10)) - 2 * text.count('# TYPE')} samples"
        )


if __name__ == "__main__":
    main()
