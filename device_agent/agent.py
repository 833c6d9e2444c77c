"""Assembles the agent: config, chips, trusted landmarks, the responder server."""

from __future__ import annotations

import logging
import threading
import time

from device_agent.chips import Chip, discover_nvml, simulated_chips, software_chips
from device_agent.config import AgentConfig
from device_agent.errors import AgentConfigError
from keystore.cert_files import read_ca_public_key, trusted_landmark_keys
from protocol.responder import ResponderConfig, ResponderCore
from udp_io.responder_server import ResponderServer

logger = logging.getLogger(__name__)


def build_server(config: AgentConfig, chips: list[Chip]) -> ResponderServer:
    if not chips:
        raise AgentConfigError("no chips to serve: no enrolled GPU found (try --simulate N)")
    ca_key = read_ca_public_key(config.ca_public_key)
    landmark_keys = trusted_landmark_keys(config.landmark_certs_dir, ca_key, int(time.time()))
    if not landmark_keys:
        logger.warning("no valid landmark certificates in %s: every challenge will be dropped",
                       config.landmark_certs_dir)
    core = ResponderCore(
        {chip.chip_id: chip.signer for chip in chips},
        landmark_keys,
        ResponderConfig(
            clock_skew_ns=int(config.clock_skew_s * 1e9),
            replay_cache_size=config.replay_cache_size,
            rate_per_s=config.rate_per_s,
            burst=config.burst,
        ),
    )
    return ResponderServer(
        core, config.host, config.port,
        hello_targets=[(lm.host, lm.port) for lm in config.landmarks],
        hello_interval_s=config.hello_interval_s,
        extra_delay_ns=int(config.extra_delay_ms * 1e6),
    )


def load_chips(config: AgentConfig, simulate: int | None) -> list[Chip]:
    if simulate is not None:
        config.key_dir.mkdir(parents=True, exist_ok=True)
        return simulated_chips(simulate, config.key_dir)
    if config.software_chips:
        return software_chips(config.software_chips, config.key_dir)
    return discover_nvml(config.key_dir)


def run_agent(config: AgentConfig, simulate: int | None, stop: threading.Event) -> None:
    """Serve until `stop` is set, logging counters every stats_interval_s (off the hot path)."""
    chips = load_chips(config, simulate)
    server = build_server(config, chips)
    server.start()
    logger.info("agent serving %d chips on %s:%d: %s", len(chips), *server.address,
                ", ".join(chip.chip_id for chip in chips[:8]) + (" …" if len(chips) > 8 else ""))
    try:
        while not stop.wait(config.stats_interval_s):
            logger.info("agent counters: %s", server.counters())
    finally:
        server.stop()
        logger.info("agent stopped: %s", server.counters())
