"""A teacher that is a local transformers causal LM, generating traces in batches (greedy)."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

from reasonbridge.curation.teacher_cache import Budget, provenance
from reasonbridge.curation.teachers import teacher_messages


class HFLocalTeacher:
    name = "hf_local"

    def __init__(self, path: str, *, max_tokens: int = 512, batch_size: int = 8, dtype: str = "float32",
                 system_prompt: str | None = None, seed: int = 0):
        if not Path(path).is_dir():
            raise ValueError(f"teacher.model={path!r}: hf_local needs a local model folder")
        self.path, self.max_tokens, self.batch_size, self.dtype = path, max_tokens, batch_size, dtype
        self.system_prompt = system_prompt
        self.endpoint = str(Path(path).resolve())
        self.identity = {"name": self.name, "path": self.endpoint, "dtype": dtype, "system_prompt": system_prompt}
        self.sampling = {"max_tokens": max_tokens, "temperature": 0.0}
        self._model = None

    @classmethod
    def from_config(cls, cfg, *, seed: int) -> "HFLocalTeacher":
        if cfg.temperature != 0.0:
            raise ValueError("teacher=hf_local decodes greedily: set teacher.temperature=0")
        return cls(cfg.model, max_tokens=cfg.max_tokens, batch_size=cfg.batch_size, dtype=cfg.dtype,
                   system_prompt=cfg.system_prompt, seed=seed)

    def prompt(self, problem: dict) -> str:
        return json.dumps(teacher_messages(problem["problem"], self.system_prompt), ensure_ascii=False)

    def _load(self):
        if self._model is None:
            from reasonbridge.models.loading import load_model
            self._model = load_model(self.path, self.dtype)
        return self._model

    def run(self, jobs: list[tuple[str, dict, str]], emit: Callable, budget: Budget) -> None:
        from reasonbridge.models.generation import generate

        if not jobs:
            return
        model, tokenizer = self._load()
        for start in range(0, len(jobs), self.batch_size):
            batch = jobs[start:start + self.batch_size]
            for _ in batch:
                budget.reserve(0.0)
            t0 = time.perf_counter()
            templated = [tokenizer.apply_chat_template(json.loads(p), add_generation_prompt=True, tokenize=False)
                         for _, _, p in batch]
            outputs = generate(model, tokenizer, templated, max_new_tokens=self.max_tokens,
                               batch_size=self.batch_size, progress=False)
            seconds = (time.perf_counter() - t0) / len(batch)
            for (key, _, _), prompt, out in zip(batch, templated, outputs):
                usage = {"prompt_tokens": len(tokenizer(prompt, add_special_tokens=False)["input_ids"]),
                         "completion_tokens": out["tokens"]}
                emit(key, {"text": out["output"], "finish_reason": "length" if out["hit_limit"] else "stop"},
                     provenance(self.name, self.endpoint, usage, 0.0, seconds))
                budget.settle(0.0, 0.0)
