"""Export the trained video and query towers to ONNX (opset 17, dynamic batch) and check parity.

Serving (ingestion, re-embedding, the query path) runs these graphs in onnxruntime; torch is only
needed to train. `check_parity` is the guard that an export is faithful (cosine >= 0.999).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from vidsearch.encoders.balanced.inputs import AUDIO_DIM, TEXT_DIM, VISION_DIM, VideoArrays
from vidsearch.encoders.balanced.towers import QueryTower, VideoTower

OPSET = 17
VIDEO_OUTPUTS = ("fused", "text", "vision", "audio")
INPUTS = ("text_in", "vision_in", "audio_in", "present")


def export_towers(video: VideoTower, query: QueryTower, out_dir: Path) -> tuple[Path, Path]:
    video.eval(), query.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    vpath, qpath = out_dir / "video_tower.onnx", out_dir / "query_tower.onnx"
    n = 2
    dummy = (torch.randn(n, TEXT_DIM), torch.randn(n, VISION_DIM), torch.randn(n, AUDIO_DIM), torch.ones(n, 3))
    torch.onnx.export(video, dummy, str(vpath), input_names=list(INPUTS),
                      output_names=list(VIDEO_OUTPUTS),
                      dynamic_axes={k: {0: "batch"} for k in (*INPUTS, *VIDEO_OUTPUTS)},
                      opset_version=OPSET, dynamo=False)
    torch.onnx.export(query, (torch.randn(n, video.cfg.dim),), str(qpath), input_names=["query"],
                      output_names=["embedding"], dynamic_axes={"query": {0: "batch"}, "embedding": {0: "batch"}},
                      opset_version=OPSET, dynamo=False)
    return vpath, qpath


def _min_cos(a: np.ndarray, b: np.ndarray) -> float:
    keep = (np.linalg.norm(a, axis=1) > 0) | (np.linalg.norm(b, axis=1) > 0)
    a, b = a[keep], b[keep]
    if len(a) == 0:
        return 1.0
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return float(np.min((a * b).sum(1) / np.maximum(den, 1e-12)))


@torch.no_grad()
def check_parity(video: VideoTower, query: QueryTower, out_dir: Path, arrays: VideoArrays,
                 query_vecs: np.ndarray) -> dict[str, float]:
    """Minimum cosine between torch and onnxruntime outputs, per output."""
    from vidsearch.encoders.balanced.serve import BalancedModel

    served = BalancedModel.load(out_dir, require_card=False)
    t = {k: torch.from_numpy(v) for k, v in arrays.as_feed().items()}
    torch_out = [x.numpy() for x in video(*(t[k] for k in INPUTS))]
    onnx_out = served.embed_arrays(arrays)
    parity = {k: _min_cos(torch_out[i], onnx_out[k]) for i, k in enumerate(VIDEO_OUTPUTS)}
    parity["query"] = _min_cos(query(torch.from_numpy(query_vecs)).numpy(), served.embed_query_vectors(query_vecs))
    return parity
