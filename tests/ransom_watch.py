"""Run the ransomware source alone in a process of its own, handed out like the agent does.

Prints {"ready": seconds, "directories": n} once the watches are set, then one
JSON line per event each report interval; stops when stdin closes. Logs go
to stderr. Used by bench/ransomware_watcher.py (its CPU, in real time) and by
the tests that need a watcher they can stop and continue (SIGSTOP/SIGCONT).

    python3 tests/ransom_watch.py CONFIG.json [--report SECONDS]

CONFIG.json: {"state_dir": "...", "security": {"ransomware": {...}}, "backup": [...]}.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import threading
import time
from pathlib import Path
from typing import Any

from dcguard.agent.sources import SourceContext, load_all
from dcguard.common.config import Table
from dcguard.v1 import collector_pb2 as pb


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--report", type=float, default=15.0, help="seconds between reports")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(message)s")
    config = json.loads(args.config.read_text())
    context = SourceContext(host="watch", interval=15.0, state_dir=Path(config.pop("state_dir")))
    source: Any = load_all()["ransomware"].factory(Table(config), context)
    started = time.monotonic()
    source.start()
    source.wait_rounds(1, 600)
    ready = {"ready": time.monotonic() - started, "directories": source.watched_directories}
    print(json.dumps(ready), flush=True)
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    while not done.wait(args.report):
        report = pb.Report()
        source.collect(report)
        source.commit()
        for event in report.events:
            line = {
                "time": event.time.ToNanoseconds() / 1e9,
                "type": event.type,
                "path": event.path,
                "sign": event.details["sign"],
                "files_touched": int(event.details["files_touched"]),
                "paths": event.details["paths"].splitlines(),
            }
            print(json.dumps(line), flush=True)
    source.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
