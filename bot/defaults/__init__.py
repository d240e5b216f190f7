"""Data shipped with the bot: default prices."""
