"""`vidsearch plugins install`: what vidsearch puts into a running OpenSearch and Milvus.

OpenSearch: a versioned index template (every `<prefix>-<model version>` index gets our mapping),
search pipelines, and the current model version's index behind the alias. Milvus: the current
collection behind its alias. Each step compares the installed version first, so running it twice
changes nothing and says so.
"""

from __future__ import annotations

from typing import Any

from vidsearch.core.errors import VidsearchError
from vidsearch.core.settings import Settings
from vidsearch.plugins.milvus.videos import collection_name, ensure_collection
from vidsearch.plugins.opensearch.videos import ensure_index, index_name, mapping

TEMPLATE_VERSION = 2  # bump when mapping() changes
PIPELINES: dict[str, dict[str, Any]] = {
    # Over-fetch k-NN candidates then cut back to the requested size: what the retriever's
    # `overfetch` does client-side, for callers that query OpenSearch directly.
    "vidsearch-overfetch": {
        "description": "vidsearch: oversample x5 then truncate to size",
        "request_processors": [{"oversample": {"sample_factor": 5}}],
        "response_processors": [{"truncate_hits": {}}],
    },
}
HYBRID_PIPELINE = {
    "description": "vidsearch: neural-search hybrid query, min-max normalisation, arithmetic mean",
    "phase_results_processors": [{"normalization-processor": {
        "normalization": {"technique": "min_max"}, "combination": {"technique": "arithmetic_mean"}}}],
}


class InstallError(VidsearchError):
    """A store refused part of the installation."""


def install_opensearch(client: Any, prefix: str, model_version: str) -> dict[str, Any]:
    name = f"{prefix}-template"
    body = {"index_patterns": [f"{prefix}-*"], "version": TEMPLATE_VERSION, "priority": 100,
            "template": mapping(), "_meta": {"managed_by": "vidsearch", "template_version": TEMPLATE_VERSION}}
    try:
        existing = client.indices.get_index_template(name=name)["index_templates"][0]["index_template"]
        current = existing.get("version")
    except Exception:  # 404: not installed yet
        current = None
    if current == TEMPLATE_VERSION:
        template = "unchanged"
    else:
        client.indices.put_index_template(name=name, body=body)
        template = "created" if current is None else f"updated from {current}"
    plugins = {p["component"] for p in client.cat.plugins(format="json")}
    pipelines = {}
    wanted = dict(PIPELINES)
    if "opensearch-neural-search" in plugins:
        wanted["vidsearch-hybrid"] = HYBRID_PIPELINE
    else:
        pipelines["vidsearch-hybrid"] = "skipped: the neural-search plugin is not installed"
    for pid, pbody in wanted.items():
        versioned = {**pbody, "version": TEMPLATE_VERSION}
        try:
            have = client.transport.perform_request("GET", f"/_search/pipeline/{pid}")[pid]
        except Exception:
            have = None
        if have and have.get("version") == TEMPLATE_VERSION:
            pipelines[pid] = "unchanged"
        else:
            client.transport.perform_request("PUT", f"/_search/pipeline/{pid}", body=versioned)
            pipelines[pid] = "created" if have is None else "updated"
    index = index_name(prefix, model_version)
    ensure_index(client, index, prefix)
    aliases = client.indices.get_alias(name=prefix)
    return {"template": template, "pipelines": pipelines, "index": index, "alias": {prefix: sorted(aliases)}}


def install_milvus(client: Any, prefix: str, model_version: str) -> dict[str, Any]:
    name = collection_name(prefix, model_version)
    existed = client.has_collection(name)
    ensure_collection(client, name, prefix)
    target = client.describe_alias(alias=prefix).get("collection_name")
    return {"collection": name, "created": not existed, "alias": {prefix: target}}


def install_all(settings: Settings) -> dict[str, Any]:
    from vidsearch.plugins.milvus.client import make_client as milvus_client
    from vidsearch.plugins.opensearch.client import make_client

    cfg = settings.indexer
    report: dict[str, Any] = {}
    if "opensearch" in cfg.sinks:
        report["opensearch"] = install_opensearch(make_client(settings.opensearch), cfg.index_prefix, cfg.model_version)
    if "milvus" in cfg.sinks:
        client = milvus_client(settings.milvus)
        try:
            report["milvus"] = install_milvus(client, cfg.collection_prefix, cfg.model_version)
        finally:
            client.close()
    return report
