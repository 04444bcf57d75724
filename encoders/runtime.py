"""Process-wide CPU budget for the encoders (2 cores: do not oversubscribe)."""

from __future__ import annotations

import os
from functools import lru_cache


@lru_cache(maxsize=1)
def configure_threads(threads: int) -> None:
    """Set torch's intra-op pool once; env vars cover BLAS/OpenMP users loaded later."""
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # weights ship in packages; never reach a hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import torch
    except ImportError:
        return
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass  # already set by an earlier torch call in this process
