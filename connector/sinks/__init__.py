"""Sinks: one small interface; Milvus and OpenSearch implement only the write."""
