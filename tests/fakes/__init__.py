"""Loopback fakes of external APIs, serving the payload shapes their documentation shows."""
