"""The long-running agent: the cycle plus delivery, started and stopped in order."""

from __future__ import annotations

import logging
import signal
import threading

from dcguard.agent.config import AgentConfig
from dcguard.agent.runner import Ticker, agent_info, build_report
from dcguard.agent.sender import DeliveryError, Sender
from dcguard.agent.state import AgentState
from dcguard.common.config import ConfigError
from dcguard.common.systemd import notify

__all__ = ["run_agent"]

log = logging.getLogger(__name__)


def run_agent(config: AgentConfig, stop: threading.Event | None = None) -> None:
    """Run cycles until stop is set (or SIGTERM/SIGINT arrives in the main thread)."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
    if not config.collector.insecure:
        raise ConfigError(
            f"config {config.path}: collector.insecure is false, and no TLS credentials are "
            f"in {config.state_dir}: enroll the agent first"
        )
    state = AgentState(config.state_dir)
    state.open()
    sender = Sender(config.collector, agent_info(config, state.instance_id))
    ticker = Ticker(config.interval, stop)
    failing = False
    log.info("dcguard-agent %s for host %s: %d sources, every %gs, to %s", "started",
             config.host, len(config.sources), config.interval, sender.address)
    notify("READY=1")
    try:
        while ticker.wait():
            report = build_report(config.sources, state.next_sequence())
            try:
                acked = sender.submit([report])
            except DeliveryError as exc:
                if not failing:  # once per episode, not once per cycle
                    log.error("delivery failing: %s", exc)
                failing = True
                continue
            state.record_ack(acked)
            for source in config.sources:
                source.commit()
            if failing:
                log.info("delivery recovered via %s", sender.address)
                failing = False
    finally:
        notify("STOPPING=1")
        sender.close()
        config.close_sources()
        log.info("dcguard-agent stopped")
