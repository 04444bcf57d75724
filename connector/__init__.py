"""Kafka side of vidsearch: sources, validation, sinks and the offset checkpoint.

Data flow (docs/architecture.md, "Data flow"): video event -> validate -> encode -> sinks (Milvus, OpenSearch)
-> commit offsets only after every sink acknowledged.
"""
