"""`VideoFeatures` -> the fixed-size arrays the towers take (same arrays for torch and ONNX).

text   (n, 3*384): metadata, transcript and OCR text vectors
vision (n, 1280+384): mean keyframe backbone features, mean keyframe text-bridge vector
audio  (n, 384): Whisper audio vector
present(n, 3): which of text/vision/audio the video has; an absent tower contributes nothing.
(ONNX input names carry an `_in` suffix: the exporter renames inputs that clash with submodules.)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vidsearch.encoders.features import VideoFeatures

TEXT_DIM, FRAME_DIM, BRIDGE_DIM, AUDIO_DIM = 3 * 384, 1280, 384, 384
VISION_DIM = FRAME_DIM + BRIDGE_DIM
MODALITIES = ("text", "vision", "audio")


@dataclass
class VideoArrays:
    text: np.ndarray
    vision: np.ndarray
    audio: np.ndarray
    present: np.ndarray

    def __len__(self) -> int:
        return len(self.text)

    def as_feed(self) -> dict[str, np.ndarray]:
        return {"text_in": self.text, "vision_in": self.vision, "audio_in": self.audio, "present": self.present}


def _finite(x: np.ndarray) -> np.ndarray:
    return np.nan_to_num(x.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)


def video_arrays(features: list[VideoFeatures]) -> VideoArrays:
    n = len(features)
    text = np.zeros((n, TEXT_DIM), np.float32)
    vision = np.zeros((n, VISION_DIM), np.float32)
    audio = np.zeros((n, AUDIO_DIM), np.float32)
    present = np.zeros((n, 3), np.float32)
    for i, f in enumerate(features):
        text[i] = _finite(np.concatenate([f.text_metadata, f.text_transcript, f.text_ocr]))
        if len(f.frame_features):
            vision[i, :FRAME_DIM] = _finite(f.frame_features.mean(axis=0))
            vision[i, FRAME_DIM:] = _finite(f.frame_bridge.mean(axis=0))
        audio[i] = _finite(f.audio_vector)
        present[i] = [np.any(text[i]), np.any(vision[i]), f.has_audio and np.any(audio[i])]
    return VideoArrays(text, vision, audio, present)
