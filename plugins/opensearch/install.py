"""What `vidsearch plugins install` puts into a running OpenSearch: a versioned index template
(every `<prefix>-<model version>` index gets our mapping), search pipelines, and the model
version's index behind the alias. Each step compares the installed version first, so running it
twice changes nothing and says so."""

from __future__ import annotations

from typing import Any

from opensearchpy import OpenSearch
from opensearchpy.exceptions import NotFoundError

from vidsearch.plugins.opensearch.videos import ensure_index, index_name, mapping

TEMPLATE_VERSION = 5  # bump when mapping() or a pipeline changes
PIPELINES: dict[str, dict[str, Any]] = {
    # Over-fetch k-NN candidates then cut back to the requested size: what the retriever's
    # `overfetch` does client-side, for callers that query OpenSearch directly.
    "vidsearch-overfetch": {
        "description": "vidsearch: oversample x5 then truncate to size",
        "request_processors": [{"oversample": {"sample_factor": 5}}],
        "response_processors": [{"truncate_hits": {}}],
    },
}
HYBRID_PIPELINE_ID = "vidsearch-hybrid"
HYBRID_PIPELINE = {
    "description": "vidsearch: neural-search hybrid query, min-max normalisation, arithmetic mean",
    "phase_results_processors": [{"normalization-processor": {
        "normalization": {"technique": "min_max"}, "combination": {"technique": "arithmetic_mean"}}}],
}
NEURAL_SEARCH_PLUGIN = "opensearch-neural-search"


def template_name(prefix: str) -> str:
    return f"{prefix}-template"


def install_template(client: OpenSearch, prefix: str, replicas: int = 0, shards: int = 1) -> str:
    name = template_name(prefix)
    body = {"index_patterns": [f"{prefix}-*"], "version": TEMPLATE_VERSION, "priority": 100,
            "template": mapping(replicas, shards), "_meta": {"managed_by": "vidsearch", "template_version": TEMPLATE_VERSION}}
    try:
        have = client.indices.get_index_template(name=name)["index_templates"][0]["index_template"]
        current = have.get("version")
        have_index = have.get("template", {}).get("settings", {}).get("index", {})
        have_shape = (str(have_index.get("number_of_replicas")), str(have_index.get("number_of_shards")))
    except NotFoundError:
        current, have_shape = None, None
    if current == TEMPLATE_VERSION and have_shape == (str(replicas), str(shards)):
        return "unchanged"
    client.indices.put_index_template(name=name, body=body)
    return "created" if current is None else f"updated from {current}"


def install_pipelines(client: OpenSearch) -> dict[str, str]:
    """The search pipelines; the hybrid one only where the neural-search plugin can run it (a
    pipeline naming a missing processor is refused by OpenSearch)."""
    plugins = {p["component"] for p in client.cat.plugins(format="json")}
    report: dict[str, str] = {}
    wanted = dict(PIPELINES)
    if NEURAL_SEARCH_PLUGIN in plugins:
        wanted[HYBRID_PIPELINE_ID] = HYBRID_PIPELINE
    else:
        report[HYBRID_PIPELINE_ID] = "skipped: the neural-search plugin is not installed"
    for pid, pbody in wanted.items():
        try:
            have = client.transport.perform_request("GET", f"/_search/pipeline/{pid}")[pid]
        except NotFoundError:
            have = None
        if have and have.get("version") == TEMPLATE_VERSION:
            report[pid] = "unchanged"
        else:
            client.transport.perform_request("PUT", f"/_search/pipeline/{pid}", body={**pbody, "version": TEMPLATE_VERSION})
            report[pid] = "created" if have is None else "updated"
    return report


def install(client: OpenSearch, prefix: str, model_version: str, replicas: int = 0, shards: int = 1) -> dict[str, Any]:
    template = install_template(client, prefix, replicas, shards)
    pipelines = install_pipelines(client)
    index = index_name(prefix, model_version)
    ensure_index(client, index, prefix, replicas, shards)
    aliases = client.indices.get_alias(name=prefix)
    return {"template": template, "pipelines": pipelines, "index": index, "alias": {prefix: sorted(aliases)}}
