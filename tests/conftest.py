"""Fixtures: a running collector and a way to start agents against it, all on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.guards import (  # noqa: F401 - pytest finds the fixture and hooks here
    note_started_processes,
    pytest_runtest_logreport,
    pytest_sessionfinish,
)
from tests.support import Agent, Collector

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def ingest_processes() -> int:
    """How many ingest processes serve the collector's agent port (0: the collector itself).

    A module runs its tests both ways by overriding this with params.
    """
    return 0


@pytest.fixture
def collector(tmp_path: Path, ingest_processes: int) -> Iterator[Collector]:
    """A running insecure collector on ephemeral loopback ports."""
    process = Collector(tmp_path / "collector", ingest_processes=ingest_processes)
    process.start()
    yield process
    process.stop()


@pytest.fixture
def make_agent(tmp_path: Path) -> Iterator[object]:
    """A factory for agents (stopped again at the end of the test)."""
    agents: list[Agent] = []

    def make(addresses: list[str], name: str = "agent", **kwargs: object) -> Agent:
        agent = Agent(tmp_path / name, addresses, **kwargs)  # type: ignore[arg-type]
        agents.append(agent)
        return agent

    yield make
    for agent in agents:
        agent.stop()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[object]:
    """A private PostgreSQL cluster for the whole session (tests/postgres.py), removed after."""
    from tests.postgres import running_cluster

    with running_cluster() as cluster:
        yield cluster
