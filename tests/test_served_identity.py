"""A served model's identity: its name plus the endpoint's base URL, in the records and the answer-cache key, so two
servers of one model name are neither pooled in one fit nor share cached answers (item 3 of issue 24)."""

from __future__ import annotations

import pytest

from ue_metrics.errors import UserError
from ue_metrics.pooling import check_not_mixed, model_label
from ue_tasks.model_identity import from_inspect, from_lm_eval


def test_lm_eval_endpoint_in_identity_and_records():
    a = from_lm_eval("local-chat-completions", "model=smol,base_url=http://127.0.0.1:8000/v1/chat/completions")
    b = from_lm_eval("local-chat-completions", "model=smol,base_url=http://127.0.0.1:9000/v1/chat/completions/")
    assert a.name == b.name == "smol"
    assert a.record_fields()["model_endpoint"] == "http://127.0.0.1:8000/v1/chat/completions"
    assert b.endpoint == "http://127.0.0.1:9000/v1/chat/completions"
    assert a.cache_key() != b.cache_key()
    # the base_url was already an argument: the key answers were cached under before is kept
    assert a.cache_key() == [a.source, a.name, None, None, None, [list(x) for x in a.args]]


def test_inspect_endpoint_from_the_providers_environment(monkeypatch):
    monkeypatch.delenv("INSPECT_EVAL_MODEL_BASE_URL", raising=False)
    monkeypatch.setenv("LOCAL_BASE_URL", "http://127.0.0.1:8000/v1")
    a = from_inspect("openai-api/local/smol")
    monkeypatch.setenv("LOCAL_BASE_URL", "http://127.0.0.1:9000/v1")
    b = from_inspect("openai-api/local/smol")
    assert (a.name, b.name) == ("smol", "smol")
    assert (a.endpoint, b.endpoint) == ("http://127.0.0.1:8000/v1", "http://127.0.0.1:9000/v1")
    assert a.cache_key() != b.cache_key()
    assert from_inspect("openai-api/local/smol", {"base_url": "http://h:1/v1"}).endpoint == "http://h:1/v1"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://proxy:1/v1")
    assert from_inspect("openai/gpt-4o-mini").endpoint == "http://proxy:1/v1"
    monkeypatch.delenv("OPENAI_BASE_URL")
    assert from_inspect("openai/gpt-4o-mini").endpoint is None  # the provider's default endpoint
    # a log read back keeps the URL it ran against, whatever the environment says now
    assert from_inspect("openai-api/local/smol", base_url="").endpoint is None
    assert from_inspect("openai-api/local/smol", base_url="http://x:2/v1/").endpoint == "http://x:2/v1"


def test_two_servers_of_one_name_are_not_pooled():
    base = {"model": "smol", "outcome_set": "mini", "template": "default", "system_message": "s", "chat_template": True}
    recs = [{**base, "model_endpoint": "http://127.0.0.1:8000/v1"}, {**base, "model_endpoint": "http://127.0.0.1:9000/v1"}]
    assert model_label(recs[0]) != model_label(recs[1])
    with pytest.raises(UserError, match="different models"):
        check_not_mixed(recs)
    check_not_mixed(recs[:1] * 2)
