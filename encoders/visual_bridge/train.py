"""`vidsearch pretrain`: train the bridge head on the packaged image-text corpus.

Frozen backbone features (extracted once per backbone, cached beside the corpus) are mapped by a
two-layer MLP into the frozen text encoder's space, with a bidirectional InfoNCE. Pictures of the
same concept (one emoji drawn by four vendors, two renders of one stamp, identical names) are
co-relevant: masked out of each other's negatives rather than pushed apart. With
`hard_negatives`, each batch is built around anchors and their nearest neighbours in the text
space ("cat" beside "lion" and "tiger"), as in mined hard negatives for video retrieval: random
batches of 256 out of thousands of concepts rarely hold a confusable pair.

Early stopping watches image->text R@1 on the corpus's own validation groups; choices between
settings are made on the Tux Paint validation split by `vidsearch eval`, never on test.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from vidsearch.encoders.text import TextEncoder
from vidsearch.encoders.vision import VisionEncoder
from vidsearch.encoders.visual_bridge.head import BridgeHead

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PretrainConfig:
    hidden: int = 1024
    epochs: int = 40
    batch: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    tau: float = 0.05
    hard_negatives: bool = True
    neighbours: int = 3  # text-space neighbours added to the batch per anchor
    augment: bool = True  # every render of an image; False: only the first render
    patience: int = 6
    seed: int = 0


@dataclass
class Corpus:
    """Rows of the corpus with their backbone features and text targets."""

    features: np.ndarray  # (n, backbone_dim)
    targets: np.ndarray  # (n, text_dim) unit
    groups: np.ndarray  # (n,) concept id per row
    variant: np.ndarray  # (n,)
    split: np.ndarray  # (n,) "train" | "val"
    texts: list[str]


def read_rows(corpus_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (corpus_dir / "pairs.jsonl").read_text().splitlines() if line.strip()]


def corpus_features(corpus_dir: Path, rows: list[dict], vision: VisionEncoder,
                    progress: Callable[[Iterable, int], Iterable] | None = None, chunk: int = 64) -> np.ndarray:
    """Pooled backbone features of every corpus image, cached per backbone version."""
    from PIL import Image

    cache = corpus_dir / f"features-{vision.version.replace('@', '-')}.npy"
    if cache.exists():
        cached = np.load(cache)
        if len(cached) == len(rows):
            return cached
    starts = range(0, len(rows), chunk)
    out = []
    for s in progress(starts, len(starts)) if progress else starts:
        imgs = [np.asarray(Image.open(corpus_dir / r["image"]).convert("RGB")) for r in rows[s : s + chunk]]
        out.append(vision.encode(imgs).features)
    feats = np.concatenate(out).astype(np.float32)
    np.save(cache, feats)
    return feats


def _encode_once(text: TextEncoder, texts: list[str]) -> np.ndarray:
    """(len(texts), d) text vectors, each distinct text encoded once (names repeat across vendors
    and renders, captions across keyframes)."""
    unique = sorted(set(texts))
    vecs = text.encode(unique)
    pos = {t: i for i, t in enumerate(unique)}
    return vecs[[pos[t] for t in texts]]


def load_corpus(corpus_dir: Path, vision: VisionEncoder, text: TextEncoder,
                progress: Callable[[Iterable, int], Iterable] | None = None, exclude: frozenset[str] = frozenset()) -> Corpus:
    """The corpus's pairs, without those of the `exclude` sources (a style held out for an
    out-of-domain evaluation); features are cached for every row, so excluding costs nothing."""
    rows = read_rows(corpus_dir)
    feats = corpus_features(corpus_dir, rows, vision, progress)
    if unknown := exclude - {r["source"] for r in rows}:
        raise ValueError(f"--exclude-source {', '.join(sorted(unknown))}: not a source of {corpus_dir}")
    keep = [i for i, r in enumerate(rows) if r["source"] not in exclude]
    rows, feats = [rows[i] for i in keep], feats[keep]
    texts = [r["texts"]["en"][0] for r in rows]
    return Corpus(feats, _encode_once(text, texts), np.array([r["group"] for r in rows]),
                  np.array([r["variant"] for r in rows]), np.array([r["split"] for r in rows]), texts)


def with_pairs(corpus: Corpus, features: np.ndarray, texts: list[str], groups: list[str], text: TextEncoder) -> Corpus:
    """The corpus plus extra training rows (one per picture), e.g. the keyframes of a dataset's
    train split: the head then also sees the frames it will bridge at search time, not only icons."""
    if len(features) == 0:
        return corpus
    return Corpus(np.concatenate([corpus.features, features.astype(np.float32)]),
                  np.concatenate([corpus.targets, _encode_once(text, texts)]),
                  np.concatenate([corpus.groups, np.array(groups)]),
                  np.concatenate([corpus.variant, np.zeros(len(texts), corpus.variant.dtype)]),
                  np.concatenate([corpus.split, np.array(["train"] * len(texts))]), corpus.texts + texts)


def text_neighbours(targets: np.ndarray, groups: np.ndarray, k: int) -> np.ndarray:
    """(n, k) nearest rows in the text space from other concept groups (the hard negatives)."""
    sims = targets @ targets.T
    sims[groups[:, None] == groups[None, :]] = -np.inf
    return np.argsort(-sims, axis=1)[:, :k]


def batches(n: int, batch: int, rng: np.random.Generator, neighbours: np.ndarray | None) -> list[np.ndarray]:
    """Random batches, or (with `neighbours`) anchors plus one random pick of their neighbours each."""
    order = rng.permutation(n)
    if neighbours is None:
        return [order[s : s + batch] for s in range(0, n - 1, batch)]
    per = 1 + neighbours.shape[1]
    anchors = max(1, batch // per)
    out = []
    for s in range(0, n, anchors):
        a = order[s : s + anchors]
        idx = np.concatenate([a, neighbours[a].ravel()])
        out.append(np.unique(idx))
    return out


def _co_relevant(groups: np.ndarray, targets: np.ndarray, threshold: float = 0.95) -> np.ndarray:
    return (groups[:, None] == groups[None, :]) | (targets @ targets.T > threshold)


def recall_at_1(pred: np.ndarray, targets: np.ndarray, groups: np.ndarray) -> float:
    """Image->text R@1 over the distinct concepts of a split: is the nearest concept its own?"""
    uniq, first = np.unique(groups, return_index=True)
    concept = targets[first]
    best = np.argmax(pred @ concept.T, axis=1)
    return float(np.mean(uniq[best] == groups))


def train(corpus: Corpus, cfg: PretrainConfig, card: dict, progress: Callable[[Iterable, int], Iterable] | None = None) -> tuple[BridgeHead, dict]:
    import torch

    from vidsearch.encoders.balanced.losses import info_nce_bi

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    tr = (corpus.split == "train") & (cfg.augment | (corpus.variant == 0))
    va = corpus.split == "val"
    x_tr, y_tr, g_tr = corpus.features[tr], corpus.targets[tr], corpus.groups[tr]
    neigh = text_neighbours(y_tr, g_tr, cfg.neighbours * 3) if cfg.hard_negatives else None
    d_in, d_out = x_tr.shape[1], y_tr.shape[1]
    first, last = torch.nn.Linear(d_in, cfg.hidden), torch.nn.Linear(cfg.hidden, d_out)
    net = torch.nn.Sequential(first, torch.nn.ReLU(), torch.nn.Dropout(0.1), last)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    X, Y = torch.from_numpy(x_tr), torch.from_numpy(y_tr)
    best, best_state, bad, history = -1.0, None, 0, []
    epochs = range(cfg.epochs)
    for epoch in progress(epochs, cfg.epochs) if progress else epochs:
        net.train()
        # a fresh draw of `neighbours` out of the 3x as many nearest each epoch, so batches vary
        nb = None if neigh is None else np.take_along_axis(neigh, rng.integers(0, neigh.shape[1], size=(len(neigh), cfg.neighbours)), axis=1)
        losses = []
        for idx in batches(len(X), cfg.batch, rng, nb):
            pred = torch.nn.functional.normalize(net(X[idx]), dim=1)
            same = torch.from_numpy(_co_relevant(g_tr[idx], y_tr[idx]))
            loss = info_nce_bi(pred @ Y[idx].T, cfg.tau, same)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        net.eval()
        with torch.no_grad():
            pv = torch.nn.functional.normalize(net(torch.from_numpy(corpus.features[va])), dim=1).numpy()
        r1 = recall_at_1(pv, corpus.targets[va], corpus.groups[va])
        history.append({"epoch": epoch, "loss": round(float(np.mean(losses)), 4), "val_r1": round(r1, 4)})
        if r1 > best:
            best, bad = r1, 0
            best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        else:
            bad += 1
            if bad >= cfg.patience:
                break
    assert best_state is not None
    net.load_state_dict(best_state)
    w = [p.detach().numpy().astype(np.float32) for p in (first.weight, first.bias, last.weight, last.bias)]
    head = BridgeHead(w[0].T.copy(), w[1], w[2].T.copy(), w[3], {**card, "config": asdict(cfg), "val_r1": round(best, 4),
                                                             "train_rows": int(tr.sum())})
    return head, {"val_r1": round(best, 4), "epochs": len(history), "history": history}
