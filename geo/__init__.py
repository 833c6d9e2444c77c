"""Geodesy, sound regions, calibration and verdicts: pure math, no I/O."""
