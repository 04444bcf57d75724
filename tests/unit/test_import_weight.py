"""Serving and indexing must run without torch (onnxruntime serves the models): importing the
indexer, the runner, the Kafka source and the HTTP API with torch blocked must work."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit

BLOCK = """
import importlib, sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"torch", "sentence_transformers", "transformers"}:
            raise ImportError("blocked " + name)
sys.meta_path.insert(0, Block())
for mod in sys.argv[1:]:
    importlib.import_module(mod)
"""


@pytest.mark.parametrize("module", [
    "vidsearch.connector.app",
    "vidsearch.connector.runner",
    "vidsearch.connector.sources.kafka",
    "vidsearch.ops.api.app",
    "vidsearch.plugins.retrieval.ncl_index",
])
def test_imports_without_torch(module: str) -> None:
    proc = subprocess.run([sys.executable, "-c", BLOCK, module], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_block_really_blocks() -> None:
    proc = subprocess.run([sys.executable, "-c", BLOCK, "vidsearch.encoders.balanced.towers"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "blocked torch" in proc.stderr
