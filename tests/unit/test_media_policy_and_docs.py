"""Media URI policy (path escapes, SSRF), batch de-duplication, default fusion and the two store
mappings: the pure parts between a parsed event and what the sinks write.

No test here touches the network: httpx.stream is replaced by a tripwire and name resolution is
limited to literals and `localhost` (answered from /etc/hosts).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vidsearch.connector import media_policy
from vidsearch.connector.documents import build_doc
from vidsearch.connector.errors import MediaPolicyError
from vidsearch.connector.events import VideoUpsert, parse_event
from vidsearch.core.documents import IndexDoc, Tombstone, latest_per_video
from vidsearch.core.settings import MediaPolicySettings
from vidsearch.encoders.features import VideoFeatures
from vidsearch.encoders.fusion.default import fuse, modality_vectors
from vidsearch.ops.bench.events import synthetic_features, upsert
from vidsearch.plugins.milvus.videos import MAX_TEXT_BYTES, MAX_TITLE_BYTES, to_row
from vidsearch.plugins.opensearch.client import FastJSONSerializer
from vidsearch.plugins.opensearch.videos import index_name, to_source

pytestmark = pytest.mark.unit

LOCAL_NAMES = {"10.1.2.3", "127.0.0.1", "localhost", "100.100.100.200"}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    media = tmp_path / "media"
    media.mkdir()
    (media / "a.mp4").write_bytes(b"\x00video")
    return media


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fail on any download; allow only local name resolution; return the names looked up."""
    looked_up: list[str] = []
    real = socket.getaddrinfo

    def guarded(host: str, *args: Any, **kwargs: Any) -> Any:
        assert host in LOCAL_NAMES, f"unexpected name lookup {host!r}"
        looked_up.append(host)
        return real(host, *args, **kwargs)

    def tripwire(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"network request attempted: {args!r}")

    monkeypatch.setattr(media_policy.socket, "getaddrinfo", guarded)
    monkeypatch.setattr(media_policy.httpx, "stream", tripwire)
    return looked_up


def test_resolve_local_accepts_file_inside_root(root: Path) -> None:
    policy = MediaPolicySettings(roots=(root,))
    assert media_policy.resolve_local(str(root / "a.mp4"), policy) == (root / "a.mp4").resolve()


@pytest.mark.parametrize(
    ("make_raw", "message"),
    [
        (lambda r: f"{r}/sub/../a.mp4", "contains '..'"),
        (lambda r: "media/a.mp4", "must be absolute"),
        (lambda r: str(r.parent / "outside.mp4"), "resolves outside the allowed roots"),
        (lambda r: f"{r}/a.mp4\x00.txt", "NUL byte"),
    ],
    ids=["dotdot", "relative", "outside", "nul"],
)
def test_resolve_local_refuses(root: Path, make_raw: Any, message: str) -> None:
    with pytest.raises(MediaPolicyError, match=re.escape(message)) as exc:
        media_policy.resolve_local(make_raw(root), MediaPolicySettings(roots=(root,)))
    assert exc.value.stage == "media_policy"


def test_resolve_local_refuses_symlink_escape(root: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("s3cr3t")
    os.symlink(secret, root / "link.mp4")
    with pytest.raises(MediaPolicyError, match="resolves outside the allowed roots"):
        media_policy.resolve_local(str(root / "link.mp4"), MediaPolicySettings(roots=(root,)))


def test_no_roots_refuses_everything(root: Path) -> None:
    with pytest.raises(MediaPolicyError, match="no media roots are configured"):
        media_policy.resolve_local(str(root / "a.mp4"), MediaPolicySettings())


def test_file_uri_inside_root_yields_path(root: Path, no_network: list[str]) -> None:
    (root / "a b.mp4").write_bytes(b"x")
    policy = MediaPolicySettings(roots=(root,))
    with media_policy.local_media((root / "a b.mp4").as_uri(), policy) as path:
        assert path == (root / "a b.mp4").resolve()
        assert path.read_bytes() == b"x"


@pytest.mark.parametrize(
    ("uri", "policy", "message"),
    [
        ("file://remotehost/x", {}, "file URI with a remote host 'remotehost'"),
        ("file://{root}/%2e%2e/secret", {}, "contains '..'"),
        ("ftp://x/y", {}, "scheme 'ftp' is not allowed"),
        ("http://example.com/a.mp4", {}, "http(s) media is disabled"),
        ("http://evil.example/a.mp4", {"allow_http": True}, "host 'evil.example' is not in the allow-list"),
        ("http://10.1.2.3/a.mp4", {"allow_http": True}, "resolves to non-public address 10.1.2.3"),
        ("http://127.0.0.1:8080/a.mp4", {"allow_http": True}, "resolves to non-public address 127.0.0.1"),
        ("http://localhost/a.mp4", {"allow_http": True}, "host 'localhost' resolves to non-public address"),
    ],
)
def test_local_media_refuses(root: Path, no_network: list[str], uri: str, policy: dict[str, Any], message: str) -> None:
    settings = MediaPolicySettings(roots=(root,), http_hosts=("10.1.2.3", "localhost", "127.0.0.1"), **policy)
    with pytest.raises(MediaPolicyError, match=re.escape(message)):
        with media_policy.local_media(uri.format(root=root), settings):
            pytest.fail("the block must not run")
    # only allow-listed hosts are ever resolved
    assert set(no_network) <= {"10.1.2.3", "localhost", "127.0.0.1"}


def test_shared_address_space_is_not_public(no_network: list[str]) -> None:
    settings = MediaPolicySettings(allow_http=True, http_hosts=("100.100.100.200",))
    with pytest.raises(MediaPolicyError, match="non-public address"):
        with media_policy.local_media("http://100.100.100.200/latest/meta-data", settings):
            pass


def _doc(video_id: str, version: int, title: str = "") -> IndexDoc:
    return IndexDoc(video_id, version, title, "", [], None, None, None, "", "", {})


def test_latest_per_video_keeps_highest_version_in_index_order() -> None:
    ops = [(0, _doc("a", 1)), (1, _doc("b", 5)), (2, _doc("a", 3)), (3, _doc("b", 2)), (4, Tombstone("c", 1))]
    kept = latest_per_video(ops)
    assert [(i, op.video_id, op.version) for i, op in kept] == [(1, "b", 5), (2, "a", 3), (4, "c", 1)]


def test_latest_per_video_tie_keeps_later_offset() -> None:
    kept = latest_per_video([(0, _doc("a", 2, "first")), (1, _doc("a", 2, "second"))])
    assert len(kept) == 1 and kept[0][0] == 1 and kept[0][1].title == "second"


def test_latest_per_video_newer_delete_wins_either_order() -> None:
    assert latest_per_video([(0, _doc("a", 1)), (1, Tombstone("a", 2))]) == [(1, Tombstone("a", 2))]
    assert latest_per_video([(0, Tombstone("a", 2)), (1, _doc("a", 1))]) == [(0, Tombstone("a", 2))]


def test_fused_is_unit_length_and_ignores_audio() -> None:
    feats = synthetic_features(15)  # speech, ocr and visual present
    fused = fuse(modality_vectors(feats))
    assert float(np.linalg.norm(fused)) == pytest.approx(1.0, abs=1e-5)
    feats.audio_vector = -feats.audio_vector
    np.testing.assert_array_equal(fuse(modality_vectors(feats)), fused)


def test_fused_of_text_only_is_that_vector_normalised() -> None:
    text = np.arange(1, 385, dtype=np.float32)
    vectors = modality_vectors(VideoFeatures(video_id="t", text_metadata=text))
    np.testing.assert_allclose(fuse(vectors), text / np.linalg.norm(text), rtol=1e-6)


def test_all_zero_features_fuse_to_zero_not_nan() -> None:
    vectors = modality_vectors(VideoFeatures(video_id="z"))
    fused = fuse(vectors)
    assert fused.shape == (384,) and np.isfinite(fused).all() and not fused.any()
    assert all(not v.any() for v in vectors.values())


def _built(seed: int = 3, keyframes: int = 4) -> tuple[VideoUpsert, VideoFeatures, IndexDoc]:
    event = parse_event(upsert("vid-7", 7, seed=seed), 10**8)
    assert isinstance(event, VideoUpsert)
    feats = synthetic_features(seed, keyframes=keyframes)
    return event, feats, build_doc(event, feats, "m1")


def test_build_doc_carries_vectors_keyframes_and_version() -> None:
    event, feats, doc = _built()
    assert set(doc.vectors) == {"fused", "text", "speech", "ocr", "visual", "audio"}
    assert all(v.shape == (384,) for v in doc.vectors.values())
    assert [k["t"] for k in doc.keyframes] == [0.0, 2.0, 4.0, 6.0]
    assert len(doc.keyframes[0]["vector"]) == 384
    assert (doc.model_version, doc.version, doc.title) == ("m1", 7, event.title)
    assert doc.transcript == feats.transcript_text != ""  # seed 3 has speech


def test_milvus_row_clips_to_byte_limits_on_char_boundaries() -> None:
    _, _, doc = _built()
    doc = dataclasses.replace(doc, title="a" + "é" * 2500, description="😀" * 20_000, duration=None, published_at=None)
    row = to_row(doc)
    assert row["title"] == "a" + "é" * 1999  # 3999 bytes: the half 'é' at the cut is dropped
    text = row["text"].encode("utf-8")
    assert MAX_TEXT_BYTES - 3 <= len(text) <= MAX_TEXT_BYTES
    assert doc.lexical_text.startswith(row["text"])
    assert len(row["title"].encode()) <= MAX_TITLE_BYTES
    assert (row["duration"], row["published_at"]) == (-1.0, -1)


def test_milvus_row_published_at_is_epoch_ms() -> None:
    _, _, doc = _built()
    doc = dataclasses.replace(doc, published_at=datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    assert to_row(doc)["published_at"] == 1_704_164_645_000


def test_milvus_row_short_strings_fit_their_byte_limits() -> None:
    _, _, doc = _built()
    row = to_row(dataclasses.replace(doc, tags=["é" * 100], language="é" * 16))
    assert len(row["tags"][0].encode()) <= 100 and len(row["language"].encode()) <= 16


def test_opensearch_source_omits_zero_vectors() -> None:
    _, _, doc = _built(seed=1)  # seed 1: no transcript, no OCR
    source = to_source(doc)
    vec_keys = {k for k in source if k.startswith("vec_")}
    assert vec_keys == {"vec_fused", "vec_visual", "vec_audio", "vec_ncl"}  # text_metadata is zero until apply_metadata fills it
    for key in vec_keys - {"vec_ncl"}:
        assert source[key].shape == (384,) and source[key].dtype == np.float32  # the serializer's shortest exact form
    # NCL folding: [fused; tau*beta], beta 0 until the biases are computed
    assert np.array_equal(source["vec_ncl"][:384], source["vec_fused"]) and source["vec_ncl"][384] == 0.0
    body = json.loads(FastJSONSerializer().dumps(source))
    assert np.array_equal(np.asarray(body["vec_fused"], np.float32), source["vec_fused"])  # exact float32 round trip
    assert source["transcript"] == "" and source["model_version"] == "m1"


def test_index_name_is_valid_lowercase() -> None:
    name = index_name("vidsearch-videos", "Model V2/beta")
    assert name == "vidsearch-videos-model-v2-beta"
    assert re.fullmatch(r"[a-z0-9][a-z0-9_\-]*", name)
