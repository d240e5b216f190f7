"""Team digests: statistics, charts, and the reply they become."""
