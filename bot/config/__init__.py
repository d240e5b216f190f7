"""Configuration: app.yaml plus environment variables."""

from bot.config.loader import ConfigError, ConfigIssue, config_path, load_config
from bot.config.models import AppConfig

__all__ = ["AppConfig", "ConfigError", "ConfigIssue", "config_path", "load_config"]
