"""Test helpers: databases, clocks, servers, fakes of external services."""
