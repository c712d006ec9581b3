"""The long-running agent: the report loop and the delivery thread, started and stopped in order.

The report loop only builds reports and spools them; the delivery thread
(delivery/loop.py) sends them. A report is durable in the spool before any
source commits its read positions, so a crash at any point re-reads rather
than loses.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from dcguard.agent.config import AgentConfig, load_config
from dcguard.agent.cycle.report_builder import (
    SourceErrors,
    Ticker,
    agent_info,
    build_report,
    prime,
)
from dcguard.agent.delivery.loop import STATUS_FILE, Delivery
from dcguard.agent.delivery.sender import Sender
from dcguard.agent.delivery.spool import Spool
from dcguard.agent.runtime.startup_memory import release_startup_memory
from dcguard.agent.state_dir import AgentState, StateLocked
from dcguard.agent.trust.credentials import Renewer, load_credentials
from dcguard.common.config import ConfigError
from dcguard.common.console import setup_logging
from dcguard.common.i18n import tr
from dcguard.common.signals import stop_on_signals
from dcguard.common.systemd import notify

__all__ = ["run_agent", "run_from_file"]

log = logging.getLogger(__name__)
# How long the first report waits for background sources' first round (smartctl,
# the kernel journal, backup checks); what is still unknown then says so.
FIRST_ROUND_TIMEOUT = 10.0


def run_from_file(config_path: Path) -> None:
    """`dcguard-agent run`: load the config, log at its level, run until stopped."""
    config = load_config(config_path)
    setup_logging(config.log_level)
    run_agent(config)


def run_agent(config: AgentConfig, stop: threading.Event | None = None) -> None:
    """Run cycles until stop is set (or SIGTERM/SIGINT arrives in the main thread)."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        stop_on_signals(stop)
    credentials = None
    if not config.collector.insecure:
        credentials = load_credentials(config.state_dir, config.path)
    state = AgentState(config.state_dir)
    spool = Spool(state.spool_dir, config.spool)
    try:
        state.open()
        state.lock()
        spool.open()
    except StateLocked as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(
            tr(
                "config {path}: agent.state_dir {state_dir}: {error}",
                path=config.path,
                state_dir=config.state_dir,
                error=exc.strerror or exc,
            )
        ) from None
    sender = Sender(config.collector, agent_info(config, state.instance_id), credentials)
    renewer = None
    if credentials is not None:
        renewer = Renewer(
            config.state_dir,
            config.collector.addresses,
            config.collector.timeout,
            sender.set_credentials,
            stop,
            config.host,
        )
        renewer.start()
    delivery = Delivery(spool, sender, config.spool, stop, config.state_dir / STATUS_FILE)
    log.info(
        "dcguard-agent started for host %s: %d sources, every %gs, to %s; "
        "%d reports spooled, next sequence %d",
        config.host,
        len(config.sources),
        config.interval,
        sender.address,
        len(spool),
        spool.next_sequence(),
    )
    delivery.start()
    notify("READY=1")
    try:
        prime(config.sources, FIRST_ROUND_TIMEOUT, stop)
        _report_loop(config, spool, delivery, Ticker(config.interval, stop))
    finally:
        notify("STOPPING=1")
        stop.set()
        delivery.notify()
        # Both may be inside a call to each address; a renewal under way finishes
        # writing the new key and certificate rather than dying with the process.
        calls_end = config.collector.timeout * len(config.collector.addresses) + 5
        delivery.join(calls_end)
        if renewer is not None:
            renewer.join(calls_end)
        sender.close()
        config.close_sources()
        state.unlock()
        log.info("dcguard-agent stopped; %d reports spooled", len(spool))


def _report_loop(config: AgentConfig, spool: Spool, delivery: Delivery, ticker: Ticker) -> None:
    spool_failing = False
    started = False
    errors = SourceErrors()
    while ticker.wait():
        report = build_report(config.sources, spool.next_sequence(), errors=errors)
        try:
            spool.append(report)
        except OSError as exc:  # disk full or failing: sources keep their positions
            if not spool_failing:  # once per episode
                log.error(
                    "cannot write the spool in %s: %s; reports are not being kept",
                    spool.directory,
                    exc.strerror or exc,
                )
            spool_failing = True
            continue
        if spool_failing:
            log.info("spool writable again")
            spool_failing = False
        for source in config.sources:
            try:
                source.commit()
            except Exception as exc:  # noqa: BLE001 - one source must not stop the loop
                log.warning("source %s: commit failed: %s", source.name, exc)
        delivery.notify()
        if not started:  # start-up's garbage is made by now: hand it back once
            started = True
            release_startup_memory()
