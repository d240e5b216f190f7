"""Time-triggered work: job registry, claims and the runner."""
