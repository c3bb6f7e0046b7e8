"""`model=api`: a served model (e.g. the closed-source rows of Table 1: Claude-3.5/3.7-Sonnet,
o1-preview) evaluated through any OpenAI-compatible chat-completions endpoint.

The endpoint sees chat messages only, so there are no weights to adapt (adapters=none) and no
token-level control for test-time intervention (inference=none); requests reuse the openai
teacher's client (retries with backoff, Retry-After, key from an environment variable).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from reasonbridge.curation.teachers.openai import OpenAITeacher


class ApiModel:
    """Generates one answer per chat with a served model; records match the local generators'."""

    is_api = True

    def __init__(self, model_cfg, inference, *, seed: int = 0):
        self.client = OpenAITeacher(base_url=model_cfg.base_url, model=model_cfg.api_model,
                                    api_key_env=model_cfg.api_key_env, max_tokens=inference.max_new_tokens,
                                    temperature=inference.temperature, concurrency=model_cfg.concurrency,
                                    timeout_s=model_cfg.timeout_s, seed=seed)
        self.concurrency = model_cfg.concurrency

    def generate(self, conversations: list[list[dict]]) -> list[dict]:
        def one(messages: list[dict]) -> dict:
            data, _ = self.client.complete(messages)
            choice = data["choices"][0]
            text = choice["message"]["content"]
            tokens = (data.get("usage") or {}).get("completion_tokens") or 0
            return {"output": text, "conditioned_on": None, "tokens": tokens,
                    "hit_limit": choice.get("finish_reason") == "length", "interventions": {}, "states": [],
                    "budget_exhausted": False, "stop_tokens": [], "end_of_thinking": []}

        with ThreadPoolExecutor(self.concurrency) as pool:
            return list(pool.map(one, conversations))
