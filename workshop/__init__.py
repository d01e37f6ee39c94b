"""The webhooks workshop kit's own tools: `python -m workshop --help`."""
