"""Metrics of same-source search: VCSL's segment precision/recall and ranking average precision.

Segment metrics follow the copy-overlap aware protocol of the VCSL benchmark (He et al., CVPR 2022),
so figures are comparable with published VCSL numbers. A copied segment is a box
(q_start, q_end, r_start, r_end) in seconds: a span of the query and the span of the reference it
copies. For one query-reference pair, with predicted boxes P and ground-truth boxes G:

  precision = prec_q * prec_r, where on each axis a (query, reference)
      prec_a = sum over p in P of |union over g in G touching p of (p & g) on axis a|
               / sum over p in P of |p on axis a|
  recall    = rec_q * rec_r, the same with the roles of P and G swapped.

"g touching p" means their 2-D intersection has positive area (they overlap on both axes), so a
prediction that covers the right query span but the wrong reference span earns nothing. Taking
the union of a box's intersections means two overlapping predictions inside one ground-truth box
cover it once, never more than fully (recall <= 1); precision is summed box by box, numerators
and denominators alike, so a duplicated prediction neither helps nor hurts it. Multiplying the
two axes rewards only boxes right on both videos. A box of zero length (a single instant) has zero area, touches
nothing and adds nothing: callers should widen one-keyframe segments to their shots, as
localisation does. Empty cases, as VCSL: no prediction and no truth -> (1, 1); predictions for a
pair without a copy -> (0, 1); no prediction for a pair with a copy -> (1, 0).

The overall figure is a macro average over pairs: precision over the pairs that have a
prediction (a prediction on a pair without a copy counts 0), recall over the pairs that have a
ground truth. This differs from VCSL's script, which averages every pair in each query group and
so credits a silent pair with precision 1; here silence earns nothing, so precision cannot be
inflated by predicting less. An average over no pairs is 1 (nothing predicted, nothing wrong).
"""

from __future__ import annotations

from collections.abc import Sequence

Box = tuple[float, float, float, float]  # q_start, q_end, r_start, r_end (seconds)

_AXES = ((0, 1), (2, 3))  # (start, end) positions of the query and the reference span in a Box


def _union_length(spans: list[tuple[float, float]]) -> float:
    """Total length covered by the spans, overlaps counted once."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(spans):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def _intersection(a: Box, b: Box) -> Box | None:
    """The intersection box, or None unless it has positive area (VCSL's "overlapping" pairs)."""
    q0, q1 = max(a[0], b[0]), min(a[1], b[1])
    r0, r1 = max(a[2], b[2]), min(a[3], b[3])
    return (q0, q1, r0, r1) if q1 > q0 and r1 > r0 else None


def _coverage(boxes: Sequence[Box], others: Sequence[Box]) -> float:
    """The share of `boxes` covered by `others`: per axis, each box's union of intersections with
    the others it overlaps, summed and divided by the boxes' summed lengths; the axes multiplied."""
    out = 1.0
    for start, end in _AXES:
        covered = 0.0
        for box in boxes:
            inter = [x for o in others if (x := _intersection(box, o)) is not None]
            covered += _union_length([(x[start], x[end]) for x in inter])
        total = sum(box[end] - box[start] for box in boxes)
        out *= covered / total if total > 0 else 0.0
    return out


def _check(boxes: Sequence[Box]) -> None:
    for box in boxes:
        if len(box) != 4 or box[1] < box[0] or box[3] < box[2]:
            raise ValueError(f"a box is (q_start, q_end, r_start, r_end) with start <= end, got {box!r}")


def pair_precision_recall(pred: Sequence[Box], gt: Sequence[Box]) -> tuple[float, float]:
    """VCSL's segment precision and recall of one query-reference pair (module docstring)."""
    _check(pred)
    _check(gt)
    if not pred:
        return (1.0, 0.0) if gt else (1.0, 1.0)
    if not gt:
        return 0.0, 1.0
    return _coverage(pred, gt), _coverage(gt, pred)


def f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def overall_segment_prf(pairs: Sequence[tuple[Sequence[Box], Sequence[Box]]]) -> dict[str, float]:
    """Macro precision (pairs with a prediction), recall (pairs with a ground truth) and their F1
    over (pred, gt) pairs; "pairs" is how many pairs were given."""
    precisions: list[float] = []
    recalls: list[float] = []
    for pred, gt in pairs:
        p, r = pair_precision_recall(pred, gt)
        if pred:
            precisions.append(p)
        if gt:
            recalls.append(r)
    precision = sum(precisions) / len(precisions) if precisions else 1.0
    recall = sum(recalls) / len(recalls) if recalls else 1.0
    return {"precision": precision, "recall": recall, "f1": f1(precision, recall), "pairs": float(len(pairs))}


def average_precision(ranked_ids: Sequence[str], relevant: set[str]) -> float:
    """Mean of precision@k over the ranks k of the relevant ids (missing ones count 0). A repeated
    id counts at its first rank only, so repeating a hit cannot raise the score."""
    if not relevant:
        return 0.0
    seen: set[str] = set()
    hits, total = 0, 0.0
    for vid in ranked_ids:
        if vid in seen:
            continue
        seen.add(vid)
        if vid in relevant:
            hits += 1
            total += hits / len(seen)
    return total / len(relevant)


def mean_average_precision(runs: Sequence[tuple[Sequence[str], set[str]]]) -> float:
    """Mean AP over queries that have relevant ids (a query with none has no AP to speak of)."""
    aps = [average_precision(ranked, relevant) for ranked, relevant in runs if relevant]
    return sum(aps) / len(aps) if aps else 0.0
