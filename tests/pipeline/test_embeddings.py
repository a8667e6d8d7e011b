"""The default embedding model: deterministic, unit length, closer for related texts."""

from __future__ import annotations

import numpy as np
from taskfleet_data.embeddings import HashingEmbedder, decode, encode, get_embedder


def test_hashing_model_properties():
    model = get_embedder("hashing-384")
    texts = [
        "Solar mini-grids for rural electrification in Kenya",
        "Rural electrification with solar mini grids, Kenya",
        "Mangrove restoration and coastal protection in Fiji",
        "",
    ]
    vectors = model.embed(texts)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors[:3], axis=1), 1.0) and not vectors[3].any()
    assert np.array_equal(vectors, HashingEmbedder(384).embed(texts))  # no state: same text, same vector anywhere
    similar, unrelated = float(vectors[0] @ vectors[1]), float(vectors[0] @ vectors[2])
    assert similar > 0.6 > unrelated


def test_vectors_round_trip_through_bytes():
    vector = get_embedder("hashing-64").embed(["battery recycling"])[0]
    assert np.array_equal(decode(encode(vector)), vector) and len(encode(vector)) == 64 * 4
