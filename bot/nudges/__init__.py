"""Noticing routine-heavy AI use and helping people try agentic work, without nagging."""
