"""Event sources: Kafka (production) and files (embedded default)."""
