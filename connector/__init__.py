"""Kafka side of vidsearch: sources, validation, sinks and the offset checkpoint.

Data flow (DESIGN.md section 2): video event -> validate -> encode -> sinks (Milvus, OpenSearch)
-> commit offsets only after every sink acknowledged.
"""
