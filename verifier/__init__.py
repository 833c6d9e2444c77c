"""FastAPI verifier: registries, scheduling, ingestion, verdicts, alerts."""
