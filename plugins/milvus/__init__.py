"""Milvus adapter: client factory, collection schemas, aliases."""
