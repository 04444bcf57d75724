"""Kafka client configuration and helpers shared by consumers and producers."""
