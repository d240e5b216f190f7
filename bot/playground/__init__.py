"""The local playground: a chat workspace in the browser for trying every flow."""
