"""Offline auditor: re-checks an evidence bundle without network or verifier database."""
