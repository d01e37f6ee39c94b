"""Reference solutions for the webhooks workshop: one module per step of the course."""
