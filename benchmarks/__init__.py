"""Timing, solver, ingestion benchmarks and the topology simulator."""
