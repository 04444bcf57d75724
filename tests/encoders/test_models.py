"""Real weights on real media: ASR accuracy, OCR, the vision-to-text bridge, text similarity,
ONNX parity, and a whole feature record from a clip."""

from __future__ import annotations

import re

import jiwer
import numpy as np
import pytest

from tests.encoders.conftest import stamp_rgb
from vidsearch.core.settings import Settings
from vidsearch.encoders.features import VideoFeatures
from vidsearch.encoders.media.decode import audio_16k, keyframes
from vidsearch.ops.datasets.clips import librivox_transcripts

pytestmark = [pytest.mark.models, pytest.mark.timeout(600)]

SPOKEN = {"mr": "mister", "mrs": "missus", "dr": "doctor"}


def _words(text: str) -> str:
    text = re.sub(r"</?s>", " ", text.lower()).replace("-", " ")
    words = re.sub(r"[^a-z' ]", " ", text).split()
    return " ".join(SPOKEN.get(w, w) for w in words)


def test_asr_word_error_rate_on_librivox(extractor, settings: Settings) -> None:
    pairs = librivox_transcripts()
    assert len(pairs) >= 5
    refs, hyps = [], []
    for wav, ref in pairs:
        segments = extractor.speech.transcribe(audio_16k(wav, settings.media))
        assert segments and all(0 <= s.start < s.end for s in segments)
        refs.append(_words(ref))
        hyps.append(_words(" ".join(s.text for s in segments)))
    wer = jiwer.wer(refs, hyps)
    assert wer <= 0.15, f"WER {wer:.3f}: {list(zip(refs, hyps))}"


def test_audio_vector_tells_speech_from_silence(extractor, settings: Settings) -> None:
    wav = librivox_transcripts()[0][0]
    speech = extractor.speech.embed(audio_16k(wav, settings.media))
    assert speech.shape == (384,) and abs(float(np.linalg.norm(speech)) - 1.0) < 1e-4
    assert not extractor.speech.embed(np.zeros(16000, np.float32)).any()


def test_ocr_reads_the_overlay_of_a_real_clip(clip, extractor, settings: Settings) -> None:
    frames = keyframes(clip("a.mp4"), settings.media)
    lines = extractor.ocr.read_frames([(k.t, k.rgb) for k in frames])
    squashed = "".join(line.text for line in lines).lower().replace(" ", "")
    assert "thanksforwatching" in squashed, lines
    assert len({line.text.lower() for line in lines}) == len(lines), "duplicate lines survived"


BRIDGE_STAMPS = {
    "banana": "food/fruit/banana.png",
    "pineapple": "food/fruit/cartoon/pineapple.png",
    "strawberry": "food/fruit/cartoon/strawberry.png",
    "broccoli": "food/vegetables/broccoli.png",
    "zebra": "animals/mammals/equines/zebra.png",
    "tiger": "animals/mammals/cats/tiger.png",
    "elephant": "animals/mammals/elephant.png",
    "violin": "hobbies/music/string/violin.png",
    "teapot": "household/dishes/teapot.png",
    "guitar": "hobbies/music/string/guitar2.png",
}


def test_bridge_vector_is_closest_to_its_true_label(extractor) -> None:
    labels = list(BRIDGE_STAMPS)
    logits = extractor.vision.encode([stamp_rgb(p) for p in BRIDGE_STAMPS.values()]).logits
    bridge = extractor.bridge.bridge(logits)
    label_vecs = extractor.text.encode([f"a photo of a {name}" for name in labels])
    sims = bridge @ label_vecs.T
    for i, name in enumerate(labels):
        others = np.delete(sims[i], i)
        assert sims[i, i] > others.max(), f"{name}: true {sims[i, i]:.3f} vs best other {others.max():.3f}"


def test_text_encoders(extractor) -> None:
    from vidsearch.encoders.text import load_text_encoder

    for enc in (extractor.text, load_text_encoder("e5")):
        v = enc.encode(["a kitten sleeping", "a small cat asleep", "a red sports car", ""])
        assert v.shape == (4, 384) and np.allclose(np.linalg.norm(v[:3], axis=1), 1.0, atol=1e-4)
        assert not v[3].any(), "empty text must give a zero vector, not a bias"
        assert v[0] @ v[1] > v[0] @ v[2] + 0.1, enc.name


def test_onnx_matches_torch_on_real_inputs(extractor, clips, settings: Settings) -> None:
    from vidsearch.encoders.onnx.serve import OrtEfficientNetEncoder, OrtMiniLMEncoder, ensure_exported
    from vidsearch.ops.bench.encode import _captions

    text_path, vision_path = ensure_exported(settings, text_graph="fp32")
    ort_text, ort_vision = OrtMiniLMEncoder(text_path), OrtEfficientNetEncoder(vision_path)
    assert ort_text.version == extractor.text.version and ort_vision.version == extractor.vision.version
    texts = _captions(96)
    cos_text = (extractor.text.encode(texts) * ort_text.encode(texts)).sum(1)
    assert cos_text.min() >= 0.999, cos_text.min()
    frames = [k.rgb for c in clips[:6] for k in keyframes(c.path, settings.media)]
    torch_out, ort_out = extractor.vision.encode(frames), ort_vision.encode(frames)
    assert (torch_out.features * ort_out.features).sum(1).min() >= 0.999
    assert (torch_out.logits.argmax(1) == ort_out.logits.argmax(1)).all()


def test_the_smoothed_int8_text_graph_is_built_from_the_shipped_calibration(extractor, settings: Settings) -> None:
    """`onnx_text_graph = "int8_smooth"` needs no dataset: the graph is rebuilt from the package's
    calibration, is int8 (far smaller than fp32), stays close to torch, and carries a version id
    of its own (its vectors are not fp32's nor plain int8's)."""
    from vidsearch.encoders.onnx.serve import ensure_exported, shipped_calibration, text_encoder_for
    from vidsearch.ops.bench.encode import _captions

    cfg = settings.model_copy(update={"encoders": settings.encoders.model_copy(update={"backend": "onnx", "onnx_text_graph": "int8_smooth"})})
    path, _ = ensure_exported(cfg)
    fp32, _ = ensure_exported(cfg, text_graph="fp32")
    assert shipped_calibration().digest() in path.name
    assert path.stat().st_size < 0.9 * fp32.stat().st_size  # most MatMuls carry int8 weights
    smooth = text_encoder_for(path, cfg)
    versions = {smooth.version, extractor.text.version, text_encoder_for(ensure_exported(cfg, text_graph="int8")[0], cfg, "int8").version}
    assert len(versions) == 3, versions
    texts = _captions(96)
    cos = (extractor.text.encode(texts) * smooth.encode(texts)).sum(1)
    assert cos.min() >= 0.98, cos.min()


def test_extract_a_clip_into_a_lossless_record(clip, extractor) -> None:
    feats = extractor.extract(clip("Megamind.avi"), video_id="megamind", title="Megamind trailer", tags=["animation"])
    k = len(feats.keyframe_times)
    assert feats.frame_features.shape == (k, 1280) and feats.frame_bridge.shape == (k, 384)
    assert feats.has_audio and feats.transcript, "the trailer has dialogue"
    assert np.linalg.norm(feats.text_metadata) > 0.99 and np.linalg.norm(feats.text_transcript) > 0.99
    assert set(feats.encoder_versions) == {"text", "vision", "bridge", "asr", "ocr"}
    again = VideoFeatures.from_bytes(feats.to_bytes())
    assert again.transcript == feats.transcript and again.ocr == feats.ocr and again.tags == ["animation"]
    for name in ("frame_features", "frame_bridge", "keyframe_times", "audio_vector", "text_transcript"):
        assert np.array_equal(getattr(again, name), getattr(feats, name)), name
