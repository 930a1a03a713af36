"""Test-only fixtures: synthetic marts, segment tables and sync inputs (also used by bench/)."""
