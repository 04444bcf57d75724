"""Constants shared across layers."""

from __future__ import annotations

VIDEO_EXT = (".mp4", ".avi", ".mov", ".mkv", ".webm")  # what a folder source and the dataset builders treat as video
