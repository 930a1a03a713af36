"""Dagster wiring, one module per pipeline stage; logic lives in the plain modules it calls."""
