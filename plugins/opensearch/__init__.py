"""The OpenSearch backend (`OpenSearchVideoStore`, registered as "opensearch"): everything
vidsearch knows about OpenSearch lives here.

store.py (the `VideoStore` contract), bulk.py (versioned `_bulk` writes split by byte budget),
search.py (query bodies, results), filters.py (`Filters` -> clauses), videos.py (index names,
mapping, documents), install.py (template and search pipelines), client.py (client from settings).
"""
