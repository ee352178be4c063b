"""Topic-attention pooling: shapes, masking, query initialisation, and that each topic reads its own tokens."""

import pytest
import torch

from rustance.heads import TopicAttentionPooling


def test_shapes_and_masked_tokens_get_no_weight():
    torch.manual_seed(0)
    pool = TopicAttentionPooling(n_topics=3, hidden=8)
    hidden = torch.randn(2, 5, 8)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    weights = pool.weights(hidden, mask)
    assert weights.shape == (2, 3, 5)
    assert torch.allclose(weights.sum(-1), torch.ones(2, 3))
    assert weights[0, :, 3:].abs().max() == 0
    changed = hidden.clone()
    changed[0, 3:] = 100.0  # padding content must not change the first sentence's vectors
    assert torch.allclose(pool(hidden, mask)[0], pool(changed, mask)[0])
    assert pool(hidden, mask).shape == (2, 3, 8)


def test_each_topic_attends_to_the_token_near_its_query():
    pool = TopicAttentionPooling(n_topics=2, hidden=4)
    basis = torch.eye(4) * 20
    pool.init_queries(basis[:2])
    hidden = torch.stack([basis[1], basis[2], basis[0]]).unsqueeze(0)  # token 2 ~ topic 0, token 0 ~ topic 1
    weights = pool.weights(hidden, torch.ones(1, 3))
    assert weights[0, 0].argmax() == 2 and weights[0, 1].argmax() == 0
    assert weights[0, 0, 2] > 0.99


def test_init_queries_checks_shape_and_gradients_reach_queries():
    pool = TopicAttentionPooling(n_topics=2, hidden=4)
    with pytest.raises(ValueError, match="expected"):
        pool.init_queries(torch.zeros(3, 4))
    out = pool(torch.randn(1, 3, 4), torch.ones(1, 3))
    out.sum().backward()
    assert pool.queries.grad is not None and pool.queries.grad.abs().sum() > 0
