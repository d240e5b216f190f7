"""Usage: records from providers and files, attributed, priced, categorised, stored."""
