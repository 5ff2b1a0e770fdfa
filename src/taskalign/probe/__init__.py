"""Frozen-feature probes of an encoder's weights against its random initialisation, and the
foundation gate (DESIGN.md §3): `probe_encoder`, `ProbeConfig`."""
from taskalign.probe.evaluate import ProbeConfig, probe_encoder, seeded_random

__all__ = ["ProbeConfig", "probe_encoder", "seeded_random"]
