"""Index replicas and write acknowledgement come from settings: a catalogue created with one replica
on the single local node is yellow (the replica has no second node), which the store counts as
healthy, and writes acknowledged by the primary go through."""

from __future__ import annotations

import numpy as np
import pytest

from tests.conformance.docs import make_doc
from vidsearch.core.settings import Settings
from vidsearch.plugins.backends import open_store
from vidsearch.plugins.opensearch.client import make_client
from vidsearch.plugins.opensearch.install import install_template, template_name

pytestmark = pytest.mark.integration


def _scoped(settings: Settings, name: str, **opensearch: object) -> Settings:
    return settings.model_copy(update={"indexer": settings.indexer.model_copy(update={"index_prefix": name.replace("_", "-")}),
                                       "opensearch": settings.opensearch.model_copy(update=opensearch)})


def test_replicas_and_active_shards_follow_the_settings(stack, settings: Settings, unique_name: str) -> None:
    s = _scoped(settings, unique_name, number_of_replicas=1, wait_for_active_shards="1")
    store = open_store("opensearch", s)
    try:
        store.ensure("m1", alias=True)
        index = store.physical("m1")
        client = make_client(s.opensearch)
        got = client.indices.get_settings(index=index)[index]["settings"]["index"]
        assert got["number_of_replicas"] == "1"
        assert client.cluster.health(index=index, wait_for_status="yellow")["status"] == "yellow"  # one node: the replica waits
        assert store.healthy()
        result = store.write("m1", [make_doc(np.random.default_rng(0), f"r{i}") for i in range(3)])
        assert result.written == 3 and not result.rejected
        store.refresh("m1")
        assert store.count("m1") == 3
        # the template follows the setting too: same version, other replica count -> updated
        prefix = s.indexer.index_prefix
        assert install_template(client, prefix, replicas=1) in ("created", "updated from 5", "unchanged")
        assert install_template(client, prefix, replicas=1) == "unchanged"
        assert install_template(client, prefix, replicas=0) != "unchanged"
        client.indices.delete_index_template(name=template_name(prefix))
    finally:
        if store.alias_target() is not None:
            store.drop_alias()
        store.drop("m1")
        store.close()


def test_wait_for_active_shards_must_be_all_or_a_positive_count() -> None:
    from pydantic import ValidationError

    for bad in ("0", "two", "-1"):
        with pytest.raises(ValidationError):
            Settings().opensearch.model_validate({"wait_for_active_shards": bad})
    assert Settings().opensearch.model_validate({"wait_for_active_shards": "all"}).wait_for_active_shards == "all"
