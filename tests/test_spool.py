"""The on-disk spool with real files: append, peek, ack, bounds, reopen, torn records."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path
from typing import Callable
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcguard.agent.config import load_config
from dcguard.agent.delivery.config import SpoolConfig
from dcguard.agent.delivery.records import MAGIC, decode, encode
from dcguard.agent.delivery.spool import Spool
from dcguard.common.config import ConfigError
from dcguard.v1 import collector_pb2 as pb

NOW = 1_800_000_000.0


def make_report(sequence: int, at: float = NOW, padding: int = 0) -> pb.Report:
    report = pb.Report(sequence=sequence)
    report.collected_at.FromNanoseconds(int(at * 1e9))
    if padding:
        report.filesystems.add(mountpoint="/" + "x" * padding)
    return report


def open_spool(directory: Path, config: SpoolConfig | None = None, clock: float = NOW) -> Spool:
    spool = Spool(directory, config or SpoolConfig(), clock=lambda: clock)
    spool.open()
    return spool


def fill(spool: Spool, count: int, padding: int = 0, at: float = NOW) -> list[int]:
    sequences = []
    for _ in range(count):
        report = make_report(spool.next_sequence(), at, padding)
        spool.append(report)
        sequences.append(report.sequence)
    return sequences


def sequences(spool: Spool, count: int = 10_000) -> list[int]:
    return [seq for seq, _ in spool.peek(count, 1 << 40)]


def segments(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.seg"))


def test_append_peek_ack_and_reopen(tmp_path):
    spool = open_spool(tmp_path)
    assert fill(spool, 5) == [1, 2, 3, 4, 5]
    batch = spool.peek(3, 1 << 20)
    assert [seq for seq, _ in batch] == [1, 2, 3]
    assert pb.Report.FromString(batch[0][1]).sequence == 1
    assert spool.ack(3) == 3
    assert sequences(spool) == [4, 5]

    again = open_spool(tmp_path)
    assert sequences(again) == [4, 5]
    assert again.stats().acked_sequence == 3
    assert again.next_sequence() == 6


def test_peek_respects_the_byte_bound_but_returns_at_least_one(tmp_path):
    spool = open_spool(tmp_path)
    fill(spool, 4, padding=1000)
    assert len(spool.peek(100, 2500)) == 2
    assert len(spool.peek(100, 10)) == 1


def test_sequences_are_never_reused_after_everything_is_acked_and_deleted(tmp_path):
    config = SpoolConfig(max_bytes=64 * 1024)  # 16 KiB segments
    spool = open_spool(tmp_path, config)
    fill(spool, 100, padding=500)
    assert len(segments(tmp_path)) > 2
    spool.ack(100)
    assert len(segments(tmp_path)) == 1  # only the active segment is left
    again = open_spool(tmp_path, config)
    assert len(again) == 0
    assert again.next_sequence() == 101


def test_ack_beyond_what_was_spooled_moves_the_sequence_above_it(tmp_path):
    spool = open_spool(tmp_path)
    fill(spool, 2)
    spool.ack(50)  # e.g. a state dir restored from an old backup
    assert spool.next_sequence() == 51
    assert open_spool(tmp_path).next_sequence() == 51


def test_append_numbers_the_report_above_the_last_whatever_it_carried(tmp_path):
    spool = open_spool(tmp_path)
    fill(spool, 3)
    stale = make_report(2)  # e.g. an acknowledgement moved the sequence meanwhile
    assert spool.append(stale) == 4
    assert stale.sequence == 4
    assert sequences(spool) == [1, 2, 3, 4]


def test_byte_bound_drops_oldest_first_counts_and_stamps_reports(tmp_path, caplog):
    config = SpoolConfig(max_bytes=64 * 1024)
    spool = open_spool(tmp_path, config)
    with caplog.at_level(logging.WARNING, logger="dcguard.agent.delivery.spool"):
        fill(spool, 300, padding=1000)
    stats = spool.stats()
    assert stats.bytes <= config.max_bytes
    kept = sequences(spool)
    assert kept == list(range(301 - len(kept), 301))  # the newest, contiguous
    assert stats.dropped_total == 300 - len(kept) > 0
    last = pb.Report.FromString(spool.peek(1000, 1 << 30)[-1][1])
    assert last.spool_dropped_total == stats.dropped_total
    # One warning for the episode, not one per dropped report.
    episode = [r for r in caplog.records if "spool bound reached" in r.getMessage()]
    assert len(episode) == 1
    # Disk use stays near the bound: whole segments go once consumed.
    on_disk = sum(p.stat().st_size for p in segments(tmp_path))
    assert on_disk <= config.max_bytes + 2 * config.segment_bytes

    again = open_spool(tmp_path, config)
    assert again.stats().dropped_total == stats.dropped_total
    assert sequences(again) == kept


def test_episode_ends_when_the_spool_drains(tmp_path, caplog):
    spool = open_spool(tmp_path, SpoolConfig(max_bytes=64 * 1024))
    with caplog.at_level(logging.WARNING, logger="dcguard.agent.delivery.spool"):
        fill(spool, 200, padding=1000)
        spool.ack(spool.last_sequence)
        fill(spool, 3, padding=1000)
        fill(spool, 200, padding=1000)
    messages = [r.getMessage() for r in caplog.records]
    assert sum("spool bound reached" in m for m in messages) == 2
    assert sum("no longer dropping" in m for m in messages) == 1


def test_reports_in_flight_are_not_dropped_until_their_batch_resolves(tmp_path):
    now = [NOW]
    spool = Spool(tmp_path, SpoolConfig(max_age=3600.0), clock=lambda: now[0])
    spool.open()
    fill(spool, 3)
    assert len(spool.peek(2, 1 << 20)) == 2  # 1 and 2 are being sent
    now[0] += 7200  # all three are past max_age now
    fill(spool, 1, at=now[0])
    # The collector may be storing 1 and 2 right now: they are not "dropped".
    assert sequences(spool) == [1, 2, 3, 4]
    assert spool.stats().dropped_total == 0
    spool.release()
    fill(spool, 1, at=now[0])
    assert sequences(spool) == [4, 5]
    assert spool.stats().dropped_total == 3


def test_age_bound_drops_reports_older_than_max_age(tmp_path):
    config = SpoolConfig(max_age=3600.0)
    spool = open_spool(tmp_path, config)
    fill(spool, 3, at=NOW - 7200)
    fill(spool, 2, at=NOW - 60)
    fill(spool, 1)  # the append that enforces the bound
    assert sequences(spool) == [4, 5, 6]
    assert spool.stats().dropped_total == 3
    assert spool.stats().oldest_collected == pytest.approx(NOW - 60)


def test_torn_tail_is_skipped_and_appends_continue(tmp_path, caplog):
    spool = open_spool(tmp_path)
    fill(spool, 3, padding=100)
    segment = segments(tmp_path)[-1]
    with open(segment, "r+b") as handle:
        handle.truncate(segment.stat().st_size - 7)
    with caplog.at_level(logging.WARNING, logger="dcguard.agent.delivery.spool"):
        again = open_spool(tmp_path)
    assert sequences(again) == [1, 2]
    assert again.stats().skipped_bytes > 0
    assert any("torn or corrupt" in r.getMessage() for r in caplog.records)
    # meta.json saw sequence 3 before it could be sent: it is not handed out again.
    assert again.next_sequence() == 4
    fill(again, 1)
    assert sequences(open_spool(tmp_path)) == [1, 2, 4]


def test_corrupt_record_in_the_middle_hides_nothing_after_it(tmp_path):
    spool = open_spool(tmp_path)
    fill(spool, 5, padding=100)
    segment = segments(tmp_path)[-1]
    data = bytearray(segment.read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside record 3
    segment.write_bytes(bytes(data))
    assert sequences(open_spool(tmp_path)) == [1, 2, 4, 5]


def test_garbage_meta_file_falls_back_to_the_records(tmp_path):
    spool = open_spool(tmp_path)
    fill(spool, 4)
    (tmp_path / "meta.json").write_text("{not json")
    again = open_spool(tmp_path)
    assert sequences(again) == [1, 2, 3, 4]
    assert again.next_sequence() == 5


def test_read_only_view_changes_nothing(tmp_path):
    spool = open_spool(tmp_path)
    fill(spool, 3)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    view = Spool(tmp_path, SpoolConfig(), read_only=True)
    view.open()
    assert view.stats().reports == 3
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    with pytest.raises(RuntimeError):
        view.append(make_report(4))
    missing = Spool(tmp_path / "absent", SpoolConfig(), read_only=True)
    missing.open()
    assert missing.stats().reports == 0
    assert not (tmp_path / "absent").exists()


# -- the record decoder -------------------------------------------------------------------


def test_decoder_round_trip_and_framing():
    data = encode(7, 123, b"hello") + encode(8, 456, b"")
    found = list(decode(data))
    assert [(r.sequence, r.collected_ns, r.payload) for r in found] == [  # type: ignore[union-attr]
        (7, 123, b"hello"),
        (8, 456, b""),
    ]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2048))
def test_decoder_never_raises_and_accounts_for_every_byte(data):
    covered = 0
    for item in decode(data):
        if isinstance(item, tuple):
            offset, length = item
        else:
            offset, length = item.offset, item.size
            body = data[offset + 12 : offset + length]
            assert zlib.crc32(body) == int.from_bytes(data[offset + 8 : offset + 12], "big")
        assert offset == covered and length > 0
        covered += length
    assert covered == len(data)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.binary(max_size=200), min_size=1, max_size=8),
    st.binary(max_size=64),
    st.integers(min_value=0),
)
def test_decoder_finds_every_intact_record_around_garbage(payloads, garbage, where):
    records = [encode(i + 1, i, p) for i, p in enumerate(payloads)]
    cut = where % (len(records) + 1)
    data = b"".join(records[:cut]) + garbage.replace(MAGIC, b"") + b"".join(records[cut:])
    found = [item for item in decode(data) if not isinstance(item, tuple)]
    assert [(r.sequence, r.payload) for r in found] == [  # type: ignore[union-attr]
        (i + 1, p) for i, p in enumerate(payloads)
    ]


# -- the [spool] config table -------------------------------------------------------------


def write_config(tmp_path: Path, spool_table: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(
        '[agent]\ndepartment = "d"\nstate_dir = "/tmp/x"\n'
        '[collector]\naddresses = ["127.0.0.1:4740"]\ninsecure = true\n'
        f"[spool]\n{spool_table}\n"
    )
    return path


def test_spool_config_defaults_and_values(tmp_path):
    assert load_config(write_config(tmp_path, "")).spool == SpoolConfig()
    config = load_config(
        write_config(
            tmp_path,
            (
                'max_bytes = "1GiB"\nmax_age = "14d"\nbatch_max_reports = 100\n'
                'batch_max_bytes = "256KiB"\n'
            ),
        )
    ).spool
    assert config == SpoolConfig(
        max_bytes=2**30, max_age=14 * 86400.0, batch_max_reports=100, batch_max_bytes=256 * 1024
    )
    config = load_config(write_config(tmp_path, 'max_bytes = "500M"\nbatch_max_bytes = 65536\n'))
    assert (config.spool.max_bytes, config.spool.batch_max_bytes) == (500 * 2**20, 65536)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("max_bytes = 5", "spool.max_bytes: must be at least 65536 bytes"),
        ('max_bytes = "lots"', "spool.max_bytes: must be a size"),
        ('max_bytes = "10PiB"', "spool.max_bytes: must be a size"),
        ('max_bytes = "1KiB"', "spool.max_bytes: must be at least"),
        ('max_bytes = "-5MiB"', "spool.max_bytes: must be a size"),
        ("max_age = 7", "spool.max_age: must be a duration"),
        ('max_age = "forever"', "spool.max_age"),
        ('max_age = "0s"', "spool.max_age: must be at least"),
        ('max_age = "500d"', "spool.max_age: must be at most 365d"),
        ('batch_max_reports = "many"', "spool.batch_max_reports: must be an integer"),
        ("batch_max_reports = 0", "spool.batch_max_reports: must be at least 1"),
        ("batch_max_reports = 5000", "spool.batch_max_reports: must be at most 1000"),
        ("batch_max_reports = true", "spool.batch_max_reports: must be an integer"),
        ('batch_max_bytes = "1B"', "spool.batch_max_bytes: must be at least"),
        ('batch_max_bytes = "1GiB"', "spool.batch_max_bytes: must be at most"),
        ("batch_max_bytes = [1]", "spool.batch_max_bytes: must be a size"),
        ('max_size = "1GiB"', "spool.max_size: unknown key"),
    ],
)
def test_spool_config_garbage_is_one_line_naming_the_key(tmp_path, line, problem):
    with pytest.raises(ConfigError) as raised:
        load_config(write_config(tmp_path, line))
    message = str(raised.value)
    assert problem in message and "\n" not in message


# -- durability: kill -9, power loss, a damaged position record ------------------------------


def position_file(directory: Path) -> Path:
    return directory / "position"


def test_one_fsync_per_append_and_none_per_ack(tmp_path):
    spool = open_spool(tmp_path)
    fill(spool, 2)
    calls: list[int] = []
    real = os.fsync
    with mock.patch.object(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1]):
        fill(spool, 1)
        assert len(calls) == 1  # the record's
        spool.ack(2)
        assert len(calls) == 1


_KILL_AFTER_ACK = """
import os, signal, sys
from pathlib import Path
from dcguard.agent.delivery.spool import Spool, SpoolConfig
from dcguard.v1 import collector_pb2 as pb
spool = Spool(Path(sys.argv[1]), SpoolConfig())
spool.open()
for _ in range(10):
    report = pb.Report(sequence=spool.next_sequence())
    report.collected_at.GetCurrentTime()
    spool.append(report)
spool.ack(6)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_kill_9_right_after_an_ack_repeats_nothing(tmp_path):
    done = subprocess.run([sys.executable, "-c", _KILL_AFTER_ACK, str(tmp_path)], check=False)
    assert done.returncode == -signal.SIGKILL
    # Only the position record (page cache, no fsync) knows about the ack.
    assert not (tmp_path / "meta.json").exists()
    again = open_spool(tmp_path)
    assert sequences(again) == [7, 8, 9, 10]
    assert again.stats().acked_sequence == 6
    assert again.next_sequence() == 11


@pytest.mark.parametrize("damage", ["empty", "zeros", "torn", "flipped", "too long"])
def test_a_damaged_position_record_is_one_line_and_falls_back_to_duplicates(
    tmp_path, caplog, damage
):
    spool = open_spool(tmp_path)
    fill(spool, 10)
    old = position_file(tmp_path).read_bytes()
    spool.ack(6)
    new = position_file(tmp_path).read_bytes()
    damaged = {
        "empty": b"",
        "zeros": bytes(len(new)),
        "torn": old[:20] + new[20:],  # the new acked_sequence did not land
        "flipped": new[:3] + bytes([new[3] ^ 1]) + new[4:],
        "too long": new + b"\0",
    }[damage]
    position_file(tmp_path).write_bytes(damaged)
    with caplog.at_level(logging.WARNING, logger="dcguard.agent.delivery.spool"):
        again = open_spool(tmp_path)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "position" in warnings[0] and "\n" not in warnings[0]
    # The durable meta.json never saw the ack: 1-6 are sent again (duplicates), none lost.
    assert sequences(again) == list(range(1, 11))
    assert again.next_sequence() == 11
    # The record is whole again for the next start.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="dcguard.agent.delivery.spool"):
        assert open_spool(tmp_path).next_sequence() == 11
    assert not caplog.records


def test_power_loss_keeps_an_ack_above_everything_spooled(tmp_path):
    spool = open_spool(tmp_path)
    fill(spool, 2)
    before = position_file(tmp_path).read_bytes()
    spool.ack(50)  # a state dir restored from an old backup: no record shows 50
    position_file(tmp_path).write_bytes(before)  # the unsynced write never reached the disk
    assert open_spool(tmp_path).next_sequence() == 51


def test_power_loss_keeps_drops_and_what_they_removed(tmp_path):
    config = SpoolConfig(max_bytes=64 * 1024)
    spool = open_spool(tmp_path, config)
    before = position_file(tmp_path).read_bytes()
    fill(spool, 200, padding=1000)
    kept, dropped = sequences(spool), spool.stats().dropped_total
    assert dropped > 0
    position_file(tmp_path).write_bytes(before)
    again = open_spool(tmp_path, config)
    assert again.stats().dropped_total == dropped
    assert sequences(again) == kept
    assert again.next_sequence() == 201


class _Disk:
    """The spool directory as a power cut would leave it, at every fsync.

    Each snapshot is the directory right after one fsync (of a record, meta.json's
    temporary file, the position record or the directory). Files other than the
    position record only change through fsynced writes and renames, so a cut
    between two fsyncs leaves the earlier snapshot. The position record is never
    fsynced after open, so for it every content it had up to the cut is possible
    (even older than its last fsync, which is harsher than a real disk), as is
    any torn mix of two of them, or nothing at all.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.snapshots: list[dict[str, bytes]] = []
        # (snapshots taken before it was seen, content): possible after a cut at any later one.
        self.positions: list[tuple[int, bytes]] = []

    def fsync(self, fd: int, real: Callable[[int], None] = os.fsync) -> None:
        real(fd)
        self.note_position()
        self.snapshots.append({p.name: p.read_bytes() for p in self.directory.iterdir()})

    def note_position(self) -> None:
        path = position_file(self.directory)
        if path.exists() and (not self.positions or self.positions[-1][1] != path.read_bytes()):
            self.positions.append((len(self.snapshots), path.read_bytes()))

    def possible_positions(self, cut: int) -> list[bytes]:
        return [data for seen, data in self.positions if seen <= cut + 1]

    def restore(self, snapshot: int, position: bytes | None, to: Path) -> None:
        shutil.rmtree(to, ignore_errors=True)
        to.mkdir()
        for name, data in self.snapshots[snapshot].items():
            if name != "position":
                (to / name).write_bytes(data)
        if position is not None:
            position_file(to).write_bytes(position)


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.tuples(st.just("append"), st.integers(0, 2500)),
            st.tuples(st.just("ack"), st.floats(0, 1)),
            st.tuples(st.just("reopen"), st.just(0)),
        ),
        min_size=1,
        max_size=40,
    ),
    st.randoms(use_true_random=False),
)
def test_a_power_cut_at_any_fsync_loses_nothing_and_never_lowers_a_sequence(ops, rng):
    config = SpoolConfig(max_bytes=64 * 1024)  # 16 KiB segments: rolls, deletions, drops
    with tempfile.TemporaryDirectory() as workdir:
        directory = Path(workdir) / "spool"
        disk = _Disk(Path(workdir) / "spool")
        # After each op returned: (snapshots so far, live sequences, dropped, highest
        # sequence that may have left the agent).
        history: list[tuple[int, list[int], int, int]] = []
        with mock.patch.object(os, "fsync", disk.fsync):
            spool = open_spool(directory, config)
            left = 0
            for op, arg in ops:
                if op == "append":
                    left = max(left, spool.append(make_report(0, padding=arg)))
                elif op == "ack" and spool.last_sequence:
                    acked = spool.stats().acked_sequence
                    spool.ack(acked + round((spool.last_sequence - acked) * arg))
                elif op == "reopen":
                    spool = open_spool(directory, config)
                disk.note_position()
                history.append(
                    (len(disk.snapshots), sequences(spool), spool.stats().dropped_total, left)
                )
                spool.release()
        for cut in range(len(disk.snapshots)):
            # The ops that had returned before the cut, and the one under way.
            done = [h for h in history if h[0] <= cut + 1]
            under_way = next((h for h in history if h[0] > cut + 1), None)
            live, dropped, left = done[-1][1:] if done else ([], 0, 0)
            must_keep = set(live) & set(under_way[1] if under_way else live)
            possible = disk.possible_positions(cut)
            choices: list[bytes | None] = [None, b"", *possible]
            if len(possible) > 1:
                a, b = rng.sample(possible, 2)
                choices.append(a[: len(a) // 2] + b[len(b) // 2 :])
            restored = Path(workdir) / "restored"
            disk.restore(cut, rng.choice(choices), restored)
            again = open_spool(restored, config)
            found = sequences(again)
            assert must_keep <= set(found), f"cut {cut}: lost {sorted(must_keep - set(found))}"
            assert found == sorted(set(found))
            assert again.next_sequence() > left, f"cut {cut}: sequence {left} reused"
            assert again.stats().dropped_total >= dropped
            assert again.append(make_report(0)) > max([left, *found])
