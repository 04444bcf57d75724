"""The balanced model's math on small tensors (docs/architecture.md, "Algorithms")."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vidsearch.encoders.balanced.losses import (
    dynamic_margin,
    hard_pairs,
    info_nce_bi,
    negnce,
    shuffle_indices,
    shuffled_negatives_loss,
)
from vidsearch.encoders.balanced.metrics import query_ranks, subset_metrics, summarize
from vidsearch.encoders.balanced.ncl import (
    augment_queries,
    augment_videos,
    half_step_beta,
    ncl_scores,
    plan,
    sinkhorn_biases,
)
from vidsearch.encoders.balanced.towers import VideoTower

pytestmark = pytest.mark.unit


def _unit(n: int, d: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(n, d, generator=torch.Generator().manual_seed(seed)), dim=1)


@pytest.mark.parametrize(("n_q", "n_v", "tau"), [(40, 10, 0.05), (7, 13, 0.1), (64, 64, 0.02)])
def test_sinkhorn_marginals_reach_targets(n_q: int, n_v: int, tau: float) -> None:
    scores = _unit(n_q, 16, 1) @ _unit(n_v, 16, 2).T
    res = sinkhorn_biases(scores, tau, iters=50000, tol=1e-8)
    p = plan(scores, tau, res)
    assert res.converged
    assert np.allclose(p.sum(1), np.ones(n_q), atol=1e-4)
    assert np.allclose(p.sum(0), np.full(n_v, n_q / n_v), atol=1e-4)


def test_sinkhorn_demotes_a_hub() -> None:
    videos = _unit(10, 16, 3)
    queries = F.normalize(videos[0] + 0.3 * _unit(50, 16, 4), dim=1)  # every query leans to video 0
    beta = sinkhorn_biases(queries @ videos.T, 0.05).beta
    assert int(beta.argmin()) == 0


def test_inner_product_trick_ranks_by_ncl_score() -> None:
    q, v, tau = _unit(5, 8, 5), _unit(9, 8, 6), 0.05
    q, v = q.numpy(), v.numpy()
    beta = sinkhorn_biases(_unit(30, 8, 7).numpy() @ v.T, tau).beta
    ip = augment_queries(q) @ augment_videos(v, beta, tau).T
    assert np.allclose(ip, tau * ((q @ v.T) / tau + beta[None, :]), atol=1e-5)
    np_scores = ncl_scores(q, v, _unit(30, 8, 7).numpy(), tau)
    assert np.allclose(np_scores, ip, atol=1e-5)


def test_half_step_matches_full_bias_for_an_already_balanced_bank() -> None:
    bank, v, tau = _unit(40, 8, 8), _unit(10, 8, 9), 0.1
    res = sinkhorn_biases(bank @ v.T, tau, iters=5000, tol=1e-12)
    again = half_step_beta(res.log_u, bank @ v.T, tau, n_videos=10)
    assert np.allclose(again, res.beta, atol=1e-5)


def test_sinkhorn_rejects_empty() -> None:
    with pytest.raises(ValueError, match="non-empty"):
        sinkhorn_biases(torch.zeros(0, 3), 0.05)


def test_shuffled_partner_is_never_self() -> None:
    gen = torch.Generator().manual_seed(0)
    for n in (2, 3, 8, 33):
        idx = shuffle_indices(n, 4, gen)
        assert idx.shape == (n, min(4, n - 1))
        assert not (idx == torch.arange(n)[:, None]).any()
        assert all(len(set(row.tolist())) == idx.shape[1] for row in idx)  # distinct partners
    with pytest.raises(ValueError):
        shuffle_indices(1, 1)


def test_shuffled_negative_has_text_of_i_and_vision_audio_of_j() -> None:
    torch.manual_seed(0)
    tower = VideoTower().eval()
    n = 4
    text, vision, audio = torch.randn(n, 1152), torch.randn(n, 1664), torch.randn(n, 384)
    present = torch.ones(n, 3)
    with torch.no_grad():
        f_t, f_v, f_a = tower.towers(text, vision, audio, present)
        idx = shuffle_indices(n, 1, torch.Generator().manual_seed(1))[:, 0]
        shuffled = tower.fuse(f_t, f_v[idx], f_a[idx], present)
        for i in range(n):
            j = int(idx[i])
            assert j != i
            composed, *_ = tower(text[i:i + 1], vision[j:j + 1], audio[j:j + 1], present[:1])
            assert torch.allclose(shuffled[i], composed[0], atol=1e-6)
            own, *_ = tower(text[i:i + 1], vision[i:i + 1], audio[i:i + 1], present[:1])
            assert not torch.allclose(shuffled[i], own[0], atol=1e-3)


def test_margin_zero_reduces_to_plain_infonce() -> None:
    s_pos, s_shuf = torch.tensor([0.8, 0.3, 0.5]), torch.tensor([[0.1, 0.2], [0.4, 0.0], [0.5, 0.6]])
    got = shuffled_negatives_loss(s_pos, s_shuf, torch.zeros(3), tau=0.1)
    logits = torch.cat([s_pos[:, None], s_shuf], 1) / 0.1
    want = F.cross_entropy(logits, torch.zeros(3, dtype=torch.long))
    assert torch.allclose(got, want)
    assert shuffled_negatives_loss(s_pos, s_shuf, torch.full((3,), 0.2), 0.1) > got  # a margin makes it harder


def test_dynamic_margin_grows_with_visual_relevance_and_stops_gradient() -> None:
    s = torch.tensor([[0.9, 0.1, 0.2], [0.2, 0.2, 0.2], [0.0, 0.5, 0.1]], requires_grad=True)
    delta = dynamic_margin(s, scale=0.5)
    assert not delta.requires_grad
    assert delta[0] > delta[2] >= 0 and delta[1] == 0


def test_info_nce_bi_matches_cross_entropy_both_ways_and_masks_co_relevant() -> None:
    s = _unit(5, 8, 10) @ _unit(5, 8, 11).T
    t = torch.arange(5)
    want = 0.5 * (F.cross_entropy(s / 0.1, t) + F.cross_entropy(s.T / 0.1, t))
    assert torch.allclose(info_nce_bi(s, 0.1), want)
    same = torch.zeros(5, 5, dtype=torch.bool)
    same[0, 1] = same[1, 0] = True
    assert info_nce_bi(s, 0.1, same) != info_nce_bi(s, 0.1)


def test_negnce_hard_set_is_exactly_the_defined_pairs() -> None:
    s = torch.tensor([[0.9, 0.95, 0.1], [0.2, 0.5, 0.3], [0.6, 0.1, 0.7]])
    # (0,1): 0.95 > S_00; (1,0): 0.2 > S_00? no, > S_11? no; (1,2): 0.3 > 0.5? no, > S_22 0.7? no
    # (2,0): 0.6 > S_22? no, > S_00? no; (0,2), (2,1): no
    want = torch.zeros(3, 3, dtype=torch.bool)
    want[0, 1] = True
    assert torch.equal(hard_pairs(s), want)
    s2 = s.clone()
    s2[1, 0] = 0.6  # now > S_11 = 0.5
    want[1, 0] = True
    assert torch.equal(hard_pairs(s2), want)
    p = torch.softmax(s / 0.1, dim=1)
    expected = -torch.log(p.diagonal()).mean() + 0.5 * -torch.log(1 - p[0, 1])
    assert torch.allclose(negnce(s, 0.1), expected)


def test_ranks_count_ties_against_the_query_and_ignore_other_relevant() -> None:
    scores = np.array([[0.9, 0.8, 0.95, 0.1], [0.0, 0.0, 0.0, 0.0]])
    ranks = query_ranks(scores, [[0, 2], [3]])
    assert ranks.tolist() == [1, 4]
    m = summarize(ranks)
    assert m["r1"] == 50.0 and m["r5"] == 100.0 and m["rsum"] == 250.0 and m["mdr"] == 2.5
    per = subset_metrics(scores, [[0, 2], [3]], ["text_rich", "text_poor", "text_poor", "text_rich"])
    assert per["text_poor"]["queries"] == 1 and per["text_poor"]["r1"] == 100.0  # target 2 ranks first
    assert per["text_rich"]["queries"] == 2 and math.isclose(per["text_rich"]["r1"], 50.0)  # 2 outscores 0 but is relevant
