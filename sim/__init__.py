"""Topology simulator: realistic latency, adversaries and accuracy metrics for Lightfence.

Run it as `lightfence bench sim ...` or `python -m sim ...`; see docs/sim.md.
"""
