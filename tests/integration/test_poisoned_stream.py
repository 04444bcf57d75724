"""`vidsearch ingest` survives any stream: good events interleaved with every kind of hostile
event a review found (each used to stop the consumer), against real Kafka, OpenSearch and
Milvus. Every good event must reach both stores, every bad one the DLQ under its real class,
offsets the end of the topic, and the process must still be running."""

from __future__ import annotations

import io
import json
import shutil
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

from tests.integration.indexer_helpers import (
    committed_total,
    create_topics,
    dlq_messages,
    expected_live,
    indexer_settings,
    milvus_state,
    opensearch_state,
    produce,
)
from tests.integration.kafka_clients import kafka_client, with_client  # noqa: F401 (fixture)
from tests.integration.test_indexer import text_encoder  # noqa: F401 (fixture)
from tests.integration.test_indexer_failures import VIDSEARCH, cli_env
from vidsearch.connector.app import build_pipeline, build_runner, make_writer
from vidsearch.connector.sources.kafka import KafkaSource
from vidsearch.core.errors import DataError
from vidsearch.core.settings import Settings
from vidsearch.encoders.fusion.embedder import DefaultEmbedder
from vidsearch.ops.bench import events as ev
from vidsearch.ops.datasets.clips import real_clips

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]


def _data_error_names() -> set[str]:
    import vidsearch.connector.errors  # noqa: F401 (register the subclasses)
    import vidsearch.encoders.errors  # noqa: F401
    import vidsearch.encoders.features  # noqa: F401

    names, todo = set(), [DataError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo += cls.__subclasses__()
    return names


def _event(video_id: str, version: int = 1, **fields) -> bytes:
    base = {"schema_version": 1, "op": "upsert", "video_id": video_id, "version": version, "title": f"title of {video_id}"}
    return json.dumps({**base, **fields}).encode()


def _features(seed: int, **arrays) -> str:
    import base64

    feats = ev.synthetic_features(seed)
    for name, value in arrays.items():
        setattr(feats, name, value)
    return base64.b64encode(feats.to_bytes()).decode()


def _replace_member(record: bytes, member: str, data: bytes, compress: bool = False) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(record)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED) as dst:
        for item in src.infolist():
            dst.writestr(item.filename, data if item.filename == member else src.read(item.filename))
    return out.getvalue()


def _npy_header(shape: tuple[int, ...], descr: str = "<f4") -> bytes:
    header = repr({"descr": descr, "fortran_order": False, "shape": shape}).encode()
    header += b" " * (63 - (len(header) + 10) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(header).to_bytes(2, "little") + header


def _bomb() -> str:
    """A features record whose frame_bridge inflates from ~0.4 MB to 400 MB of zeros."""
    import base64

    record = ev.synthetic_features(1).to_bytes()
    chunk = bytes(1 << 20)
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(record)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for item in src.infolist():
            if item.filename != "frame_bridge.npy":
                dst.writestr(item.filename, src.read(item.filename))
        info = zipfile.ZipInfo("frame_bridge.npy")
        info.compress_type = zipfile.ZIP_DEFLATED
        with dst.open(info, "w") as fh:  # streams through zlib: same bytes on the wire as the bomb
            fh.write(_npy_header((260_000, 384)))
            for _ in range(400):
                fh.write(chunk)
    assert len(out.getvalue()) < 2_000_000
    return base64.b64encode(out.getvalue()).decode()


def _hostile_npy(member: str, payload: bytes) -> str:
    import base64

    return base64.b64encode(_replace_member(ev.synthetic_features(2).to_bytes(), member, payload)).decode()


def hostile_events(media_root: Path, outside: Path) -> list[tuple[str, bytes, bytes | None]]:
    """(label, value, key): one per kind of input that used to escape as an unmapped error."""
    deep = {"leaf": 1}
    for _ in range(200):  # parses, but too deep to store or re-serialise safely
        deep = {"x": deep}
    playlist = media_root / "evil.m3u8"
    playlist.write_text(f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:10,\n{outside}\n#EXTINF:10,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n")
    disguised = media_root / "playlist.mp4"
    disguised.write_text(playlist.read_text())
    nan = np.full((2, 384), np.nan, np.float32)
    rows = [
        ("bad-json", b"{not json", b"bad-json"),
        ("null", None, b"null"),
        ("not-utf8", b"\xff\xfe\x00garbage", b"not-utf8"),
        ("schema", json.dumps({"schema_version": 99, "op": "upsert", "video_id": "x"}).encode(), b"schema"),
        ("key-mismatch", _event("km", features=_features(3)), b"other-key"),
        ("version-int64", _event("v64", version=2**63 + 5, features=_features(4)), b"v64"),
        ("json-too-deep", b'{"schema_version":1,"op":"upsert","video_id":"deep","version":1,"features":"' + _features(5).encode()
         + b'","extra":' + b"[" * 3000 + b"]" * 3000 + b"}", b"deep"),
        ("deep-extra", _event("nest", features=_features(6), meta=deep), b"nest"),
        ("huge-field", _event("ht", features=_features(7), description="\U0001F600" * 60_000), b"ht"),
        ("lone-surrogate", b'{"schema_version":1,"op":"upsert","video_id":"ls","version":1,"title":"\\ud800","features":"' + _features(8).encode() + b'"}', b"ls"),
        ("nan-vectors", _event("nan", features=_features(9, frame_bridge=nan)), b"nan"),
        ("int-dtype", _event("intd", features=_features(10, frame_bridge=np.ones((2, 384), np.int64))), b"intd"),
        ("rows-mismatch", _event("rows", features=_features(11, keyframe_times=np.arange(3, dtype=np.float32))), b"rows"),
        ("npy-huge-shape", _event("npyh", features=_hostile_npy("frame_bridge.npy", _npy_header((10**12, 384)) + b"\0" * 64)), b"npyh"),
        ("npy-object", _event("npyo", features=_hostile_npy("frame_bridge.npy", _npy_header((2, 384), "|O") + b"\0" * 64)), b"npyo"),
        ("bomb", _event("bomb", features=_bomb()), b"bomb"),
        ("bad-base64", _event("b64", features="!!!not base64!!!"), b"b64"),
        ("url-parse", _event("url", media_uri="http://[::1/x.mp4"), b"url"),
        ("long-component", _event("long", media_uri=str(media_root / ("a" * 300 + ".mp4"))), b"long"),
        ("outside-root", _event("outside", media_uri="/etc/passwd"), b"outside"),
        ("playlist", _event("m3u8", media_uri=str(playlist)), b"m3u8"),
        ("disguised-playlist", _event("disg", media_uri=f"file://{disguised}"), b"disg"),
        ("random-bytes-mp4", _event("rnd", media_uri=str(media_root / "random.mp4")), b"rnd"),
    ]
    (media_root / "random.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    return rows


def test_ingest_survives_every_hostile_event(stack, settings: Settings, unique_name: str, tmp_path: Path, kafka_client: str) -> None:  # noqa: F811
    media_root = tmp_path / "media"
    media_root.mkdir()
    clip = next(c.path for c in real_clips(settings.stack.cache_dir) if c.path.suffix == ".mp4")
    shutil.copy(clip, media_root / "good.mp4")
    outside = tmp_path / "outside.mp4"
    shutil.copy(clip, outside)
    s = with_client(indexer_settings(settings, unique_name, tmp_path, media_roots=(media_root,)), kafka_client)
    create_topics(s)

    good = [(f"g{i}", "upsert", 1, ev.upsert(f"g{i}", 1, seed=i)) for i in range(60)]
    good.append(("gmedia", "upsert", 1, _event("gmedia", media_uri=str(media_root / "good.mp4"))))
    bad = hostile_events(media_root, outside)
    stream, keys = [], []
    for i, (label, value, key) in enumerate(bad):  # interleave: good, bad, good, bad, ...
        for g in good[i * 2:(i + 1) * 2]:
            stream.append(g)
            keys.append(g[0].encode())
        stream.append((label, "bad", 1, value))
        keys.append(key)
    for g in good[len(bad) * 2:]:
        stream.append(g)
        keys.append(g[0].encode())
    produce(s, stream, keys=keys)

    env = {**cli_env(s), "VIDSEARCH_INDEXER__MEDIA_POLICY__ROOTS": json.dumps([str(media_root)])}
    log = (tmp_path / "ingest.log").open("w")
    proc = subprocess.Popen([VIDSEARCH, "ingest", "--source", "kafka", "--json"], env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        deadline = time.monotonic() + 420
        while committed_total(s) < len(stream) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
        alive = proc.poll() is None
        assert alive, f"the indexer exited (rc={proc.returncode}); log: {(tmp_path / 'ingest.log').read_text()[-3000:]}"
        assert committed_total(s) == len(stream), "offsets did not reach the end of the topic"
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0
    report = json.loads(out)

    dead = dlq_messages(s, expected=len(bad), timeout_s=60)
    by_key = {m.key(): dict(m.headers() or []) for m in dead}
    allowed = _data_error_names()
    print("\nhostile event -> dead-letter class / stage")  # the table the closing note quotes
    for label, _value, key in bad:
        h = by_key.get(key, {})
        print(f"  {label:22s} {h.get('x-error-class', b'-').decode():28s} {h.get('x-error-stage', b'-').decode()}")
    for label, _value, key in bad:
        assert key in by_key, f"{label} is not in the DLQ"
        cls = by_key[key]["x-error-class"].decode()
        assert cls in allowed, f"{label} dead-lettered as {cls}, not as a typed data error"
    assert report["dead"] == len(bad)
    want = expected_live(good)
    assert opensearch_state(s) == want
    assert milvus_state(s) == want


class PoisonEmbedder(DefaultEmbedder):
    """A user's plug-in embedder with a bug that fires on one video: an error nobody mapped."""

    def vectors(self, feats):  # noqa: ANN001, ANN201
        if any(f.video_id == "poison" for f in feats):
            raise RuntimeError("plug-in bug on this video")
        return super().vectors(feats)


def crash_before_commit(source: KafkaSource) -> KafkaSource:
    """Makes `source` die (like a killed process) right before committing the batch that holds
    the poison; works on either client's source."""
    commit = source.commit

    def crashing(batch) -> None:  # noqa: ANN001
        if any(m.key == b"poison" for m in batch):
            raise SystemExit("simulated crash before commit")
        commit(batch)

    source.commit = crashing  # type: ignore[method-assign]
    return source


def test_restart_on_a_poisoned_partition_does_not_crash_loop(stack, settings: Settings, unique_name: str, tmp_path: Path, text_encoder, kafka_client: str) -> None:  # noqa: F811
    s = with_client(indexer_settings(settings, unique_name, tmp_path, batch_max_events=20), kafka_client)
    create_topics(s, partitions=1)
    events = [(f"p{i}", "upsert", 1, ev.upsert(f"p{i}", 1, seed=i)) for i in range(120)]
    events.insert(50, ("poison", "upsert", 1, ev.upsert("poison", 1, seed=999)))
    produce(s, events)
    model = lambda: [(s.indexer.model_version, PoisonEmbedder())]  # noqa: E731

    def runner(make_source):  # noqa: ANN001, ANN202
        pipeline = build_pipeline(s, make_writer(s, models=model), text=text_encoder)
        return build_runner(s, pipeline, make_source(s))

    first = runner(lambda s: crash_before_commit(KafkaSource(s)))
    with pytest.raises(SystemExit):
        first.run(until_idle_s=20)
    first.source.producer.close(1.0)  # the dead letters were flushed before the commit was attempted
    first.source.consumer.close()
    stopped_at = committed_total(s)
    assert 0 < stopped_at <= 50, "the crash should leave the poisoned batch uncommitted"

    for _ in range(2):  # restart twice: the poisoned offset must never stop a runner again
        again = runner(KafkaSource)
        stats = again.run(until_idle_s=8)
        again.source.close()
        assert committed_total(s) == len(events)
    assert stats.events == 0  # the second restart found nothing left to do
    dead = dlq_messages(s, expected=2, timeout_s=20)
    assert {m.key() for m in dead} == {b"poison"}
    assert all(dict(m.headers())["x-error-class"] == b"RuntimeError" for m in dead)
    want = {vid: 1 for vid, *_ in events if vid != "poison"}
    assert opensearch_state(s) == want
    assert milvus_state(s) == want
