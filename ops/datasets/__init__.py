"""Real media and datasets installed from the registries (never committed)."""
