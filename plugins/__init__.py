"""What plugs into each search engine: one folder per engine (opensearch, milvus)."""
