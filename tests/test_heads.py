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


def _topic_attention_model(encoder_dir, context_mode="pooled"):
    from rustance.labels import load_topics
    from rustance.model import build_model

    torch.manual_seed(0)
    return build_model(str(encoder_dir), load_topics(), "topic_attention", True, 32, context_mode=context_mode)


def test_stance_model_with_topic_attention_starts_from_the_descriptions(tiny_encoder_dir):
    model, tokenizer = _topic_attention_model(tiny_encoder_dir)
    descriptions = [t["description"] for t in model.config.topics]
    batch = tokenizer(descriptions, padding=True, return_tensors="pt")
    model.eval()
    with torch.no_grad():
        expected = model.mean_pool(model.hidden_states(batch["input_ids"], batch["attention_mask"]),
                                   batch["attention_mask"])
    assert torch.allclose(model.topic_pool.queries, expected, atol=1e-5)
    assert torch.equal(model.topic_pool.key.weight, torch.eye(model.config.hidden_size))  # post_init kept it


@pytest.mark.parametrize("context_mode", ["pooled", "pair"])
def test_stance_model_with_topic_attention_gives_every_topic_its_own_vector(tiny_encoder_dir, context_mode):
    model, tokenizer = _topic_attention_model(tiny_encoder_dir, context_mode)
    model.eval()
    k, hidden = len(model.config.topics), model.config.hidden_size
    sentences = tokenizer(["Москва готова к диалогу.", "США ввели санкции против России ."], padding=True,
                          return_tensors="pt")
    vectors = model.vectors(sentences["input_ids"], sentences["attention_mask"])
    assert vectors.shape == (2, (k + 1) * hidden)  # topic vectors + the mean vector, flattened
    batch = {"input_ids": sentences["input_ids"], "attention_mask": sentences["attention_mask"]}
    if context_mode == "pooled":
        batch.update(context_input_ids=sentences["input_ids"].flip(0),
                     context_attention_mask=sentences["attention_mask"].flip(0))
    with torch.no_grad():
        out = model(**batch)
    assert out["topic_logits"].shape == (2, k)
    assert out["stance_logits"].shape == (2, k, 4)
    assert out["sentiment_logits"].shape == (2, 3)
    # the same logits from cached vectors (how a corpus run reuses a sentence's vector as the next one's context)
    features = vectors if context_mode == "pair" else torch.cat([vectors, vectors.flip(0)], dim=-1)
    with torch.no_grad():
        again = model.heads(features)
    assert torch.allclose(again["topic_logits"], out["topic_logits"], atol=1e-5)
    # a gradient reaches every topic's query
    model.train()
    model(**batch)["topic_logits"].sum().backward()
    assert (model.topic_pool.queries.grad.abs().sum(-1) > 0).all()


def test_topic_attention_model_saves_and_loads_as_an_hf_model(tiny_encoder_dir, tmp_path):
    from transformers import AutoModel

    model, tokenizer = _topic_attention_model(tiny_encoder_dir)
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert loaded.config.pooling == "topic_attention"
    assert torch.equal(loaded.topic_pool.queries, model.topic_pool.queries)
    assert torch.equal(loaded.stance_per_topic, model.stance_per_topic)
