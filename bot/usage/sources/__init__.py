"""Usage sources: provider connectors, files and the webhook."""
