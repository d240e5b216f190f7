"""The Slack adapter: Bolt on the shared aiohttp server, Block Kit rendering, delivery."""
