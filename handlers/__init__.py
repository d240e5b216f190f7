"""What happens when a person speaks or clicks. Platform-neutral: handlers take an Actor
and plain text or an action, and return the reply model (bot.reply); adapters render it."""

from handlers.router import handle_action, handle_command

__all__ = ["handle_action", "handle_command"]
