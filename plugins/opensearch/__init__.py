"""OpenSearch adapter: client factory, index templates, aliases."""
