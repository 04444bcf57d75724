"""`vidsearch encoders export-onnx --int8` and `vidsearch bench encode`, black-box: the export
goes into a fresh cache folder (so the files are really produced by this run), is loaded with
onnxruntime directly, and the benchmark then runs on that cache."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.integration.command_helpers import cli_json, only_debian_clips

pytestmark = [pytest.mark.models, pytest.mark.slow]
SENTENCES = ["a red fire truck with a ladder", "a small kitten playing with yarn", "waves on the sea at sunset",
             "now play the g chord on the guitar", "un chaton qui dort sur le canapé", "Launch day"]


@pytest.fixture(scope="module")
def onnx_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, str], dict[str, str]]]:
    """A fresh cache, and what `export-onnx --int8 --json` printed for it."""
    tmp = tmp_path_factory.mktemp("cmd_onnx")
    only_debian_clips(tmp / "cache")
    env = {"VIDSEARCH_STACK__CACHE_DIR": str(tmp / "cache"), "VIDSEARCH_STACK__STATE_DIR": str(tmp / "state")}
    yield env, cli_json(env, "encoders", "export-onnx", "--int8", "--json")


def _embed(session, tokenizer, texts: list[str]) -> np.ndarray:  # noqa: ANN001
    enc = tokenizer.encode_batch(texts)
    feeds = {"input_ids": np.array([e.ids for e in enc], np.int64),
             "attention_mask": np.array([e.attention_mask for e in enc], np.int64),
             "token_type_ids": np.array([e.type_ids for e in enc], np.int64)}
    out = session.run(None, feeds)[0]
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_export_onnx_int8_writes_graphs_that_onnxruntime_runs_close_to_float(onnx_env) -> None:  # noqa: ANN001
    import onnxruntime as ort
    from tokenizers import Tokenizer

    from vidsearch.encoders.text import MiniLMEncoder, minilm_model_dir

    env, out = onnx_env
    cache = Path(env["VIDSEARCH_STACK__CACHE_DIR"])
    assert set(out) == {"text", "text_int8", "vision"}
    paths = {k: Path(v) for k, v in out.items()}
    for kind, path in paths.items():
        assert path.is_file() and path.is_relative_to(cache / "onnx"), (kind, path)
    assert paths["text_int8"].parent == paths["text"].parent
    # int8 weights: the quantised graph is much smaller than the float one
    assert paths["text_int8"].stat().st_size < 0.5 * paths["text"].stat().st_size

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    fp32 = ort.InferenceSession(str(paths["text"]), opts, providers=["CPUExecutionProvider"])
    int8 = ort.InferenceSession(str(paths["text_int8"]), opts, providers=["CPUExecutionProvider"])
    assert {i.name for i in fp32.get_inputs()} == {i.name for i in int8.get_inputs()} == {"input_ids", "attention_mask", "token_type_ids"}
    tokenizer = Tokenizer.from_file(str(minilm_model_dir() / "tokenizer.json"))
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    a, b = _embed(fp32, tokenizer, SENTENCES), _embed(int8, tokenizer, SENTENCES)
    assert a.shape == b.shape == (len(SENTENCES), 384)
    cos = (a * b).sum(1)
    assert cos.min() > 0.95, cos  # close to float, not equal: it is quantised
    assert not np.allclose(a, b, atol=1e-6)
    torch_vecs = MiniLMEncoder().encode(SENTENCES)  # the float graph is the torch model
    assert ((a * torch_vecs).sum(1)).min() > 0.999
    # similarity structure survives quantisation: each sentence's nearest neighbour is itself
    assert (np.argmax(a @ b.T, axis=1) == np.arange(len(SENTENCES))).all()

    vision = ort.InferenceSession(str(paths["vision"]), opts, providers=["CPUExecutionProvider"])
    pixels = vision.get_inputs()[0]
    assert pixels.name == "pixels"
    batch = np.random.default_rng(0).random((2, *[d if isinstance(d, int) else 3 for d in pixels.shape[1:]]), np.float32)
    feats, logits = vision.run(["features", "logits"], {"pixels": batch})
    assert feats.shape == (2, 1280) and logits.shape == (2, 1000) and np.isfinite(feats).all()

    again = cli_json(env, "encoders", "export-onnx", "--int8", "--json")  # already there: same files, untouched
    assert again == out and all(Path(p).stat().st_mtime_ns == paths[k].stat().st_mtime_ns for k, p in again.items())


def test_bench_encode_prints_its_documented_figures(onnx_env) -> None:  # noqa: ANN001
    env, _ = onnx_env
    report = cli_json({**env, "VIDSEARCH_ENCODERS__OCR": "false", "VIDSEARCH_ENCODERS__ASR": "false"}, "bench", "encode", "--json")
    assert {"videos", "sources", "stages", "per_video_ms", "text_batch", "texts", "frames", "torch_text_per_s",
            "ort_text_per_s", "ort_speedup_text", "ort_speedup_text_int8", "ort_speedup_vision", "parity_cosine_min",
            "target"} <= set(report)
    assert report["videos"] == 4 and report["sources"] == ["opencv-doc"] and report["frames"] >= 4 * 3
    stages = report["stages"]
    assert stages["decode"]["total_ms"] > 0 and stages["vision"]["total_ms"] > 0
    assert stages["asr"]["total_ms"] == 0 and stages["ocr"]["total_ms"] == 0  # switched off for this run
    assert report["asr"] == {"speech": {"clips": 0, "p50_ms": None, "total_ms": 0.0}, "no_speech": {"clips": 0, "p50_ms": None, "total_ms": 0.0}}
    assert report["per_video_ms"]["total"] >= report["per_video_ms"]["p50"] > 0
    assert report["texts"] == 256 and report["text_batch"] == 32
    assert report["torch_text_per_s"] > 0 and report["ort_text_per_s"] > 0
    assert all(report[k] > 0 for k in ("ort_speedup_text", "ort_speedup_text_int8", "ort_speedup_vision"))
    parity = report["parity_cosine_min"]
    assert parity["text_fp32"] > 0.999 and parity["vision"] > 0.999 and 0.95 < parity["text_int8"] < 0.9999
    assert report["target"]["ort_speedup_text"] == 1.5
    assert report["target"]["met"] == (report["ort_speedup_text"] >= 1.5)
