"""p = exp(mean token log-prob) of each sentence of already-written text, given its context,
under one model with its own tokenizer: forward passes only, never generation.

An item is ``{"problem", "instruction", "text", "spans"}``: the model reads its own chat template
of the problem, then ``text`` (what the scored model wrote); ``spans`` are the sentences'
character offsets into ``text``. A token belongs to the sentence holding its first visible
character (a leading space or newline of a token does not move it to the sentence before)."""
from __future__ import annotations

import json
import math
import urllib.error
import urllib.request

import torch

from reasonbridge.errors import ServiceUnavailable, UserError
from reasonbridge.prompts import INSTRUCTION, chat


def token_sentences(text: str, offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[int | None]:
    """The sentence index of each token (None: whitespace between sentences, or a special token)."""
    owner = [None] * (len(text) + 1)
    for i, (a, b) in enumerate(spans):
        for c in range(a, b):
            owner[c] = i
    out = []
    for start, end in offsets:
        piece = text[start:end]
        lead = len(piece) - len(piece.lstrip())
        out.append(owner[start + lead] if start < end and lead < len(piece) else None)
    return out


def sentence_probs(token_logprobs: list[float], owners: list[int | None], n: int) -> list[float | None]:
    """exp(mean log-prob) per sentence; None for a sentence no token starts in."""
    sums, counts = [0.0] * n, [0] * n
    for lp, i in zip(token_logprobs, owners):
        if i is not None and lp is not None:
            sums[i] += lp
            counts[i] += 1
    return [math.exp(s / c) if c else None for s, c in zip(sums, counts)]


class LocalScorer:
    """A transformers causal LM and its tokenizer (a fast tokenizer: offsets are needed)."""

    def __init__(self, model, tokenizer, *, name: str, batch_size: int = 16, max_logits: int = 2 ** 26):
        if not getattr(tokenizer, "is_fast", False):
            raise UserError(f"provenance: {name}'s tokenizer gives no character offsets (not a fast tokenizer)")
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.batch_size, self.max_logits = batch_size, max_logits

    def context(self, item: dict) -> str:
        return self.tokenizer.apply_chat_template(chat(item["problem"], instruction=item.get("instruction", INSTRUCTION)),
                                                  add_generation_prompt=True, tokenize=False)

    @torch.inference_mode()
    def score(self, items: list[dict]) -> list[list[float | None]]:
        tok = self.tokenizer
        rows = []
        for item in items:
            prompt_ids = tok(self.context(item), add_special_tokens=False)["input_ids"]
            enc = tok(item["text"], add_special_tokens=False, return_offsets_mapping=True)
            owners = token_sentences(item["text"], enc["offset_mapping"], [tuple(s) for s in item["spans"]])
            rows.append((prompt_ids + enc["input_ids"], len(prompt_ids), owners))
        limit = getattr(getattr(self.model, "config", None), "max_position_embeddings", None)
        self.model.eval()
        device = next(self.model.parameters()).device
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        vocab = max(len(tok), getattr(getattr(self.model, "config", None), "vocab_size", 0) or 0)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))  # batches of similar length
        result: list = [None] * len(rows)
        i = 0
        while i < len(order):
            longest = len(rows[order[min(len(order) - 1, i + self.batch_size - 1)]][0])
            idx = order[i:i + max(1, min(self.batch_size, self.max_logits // max(1, longest * vocab)))]
            i += len(idx)
            batch = [rows[j] for j in idx]
            width = max(len(r[0]) for r in batch)
            if limit and width > limit:  # past the position table the model's numbers mean nothing
                batch = [(ids_[:limit], n, owners) for ids_, n, owners in batch]
                width = limit
            ids = torch.tensor([r + [pad] * (width - len(r)) for r, _, _ in batch], device=device)
            mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r, _, _ in batch], device=device)
            logits = self.model(input_ids=ids, attention_mask=mask).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1).gather(-1, ids[:, 1:, None])[..., 0].tolist()
            for b, (j, (row_ids, n_prompt, owners)) in enumerate(zip(idx, batch)):
                # the token at position t is predicted at t - 1
                lps = [logp[b][n_prompt + k - 1] if 0 < n_prompt + k < len(row_ids) else None
                       for k in range(len(owners))]
                result[j] = sentence_probs(lps, owners, len(items[j]["spans"]))
        return result


class EndpointScorer:
    """An OpenAI-compatible completions endpoint that returns prompt log-probabilities (vLLM:
    ``echo=True`` with ``logprobs``): the prompt is the context then the text, and the endpoint's
    own tokens and offsets say which sentence each log-prob belongs to. ``prompt_format`` turns
    the user message into the served model's context (its chat template, as text)."""

    def __init__(self, base_url: str, model: str, *, api_key: str | None = None, name: str = "teacher",
                 prompt_format: str = "{user}\n", timeout_s: float = 120.0):
        self.url = base_url.rstrip("/") + "/completions"
        self.model, self.api_key, self.name = model, api_key, name
        self.prompt_format, self.timeout_s = prompt_format, timeout_s

    def context(self, item: dict) -> str:
        from reasonbridge.prompts import user_message
        return self.prompt_format.format(user=user_message(item["problem"], item.get("instruction", INSTRUCTION)))

    def _post(self, body: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        req = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:300]
            if e.code in (400, 422):
                raise UserError(f"provenance: {self.url} refused a prompt-logprobs request (HTTP {e.code}: {detail}); "
                                "tracing needs an endpoint that returns prompt log-probabilities "
                                "(the completions API with echo=true and logprobs, as vLLM serves)") from None
            raise ServiceUnavailable(f"provenance: {self.url} answered HTTP {e.code}: {detail}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            raise ServiceUnavailable(f"provenance: cannot reach {self.url}: {e}") from None

    def score(self, items: list[dict]) -> list[list[float | None]]:
        out = []
        for item in items:
            context = self.context(item)
            body = {"model": self.model, "prompt": context + item["text"], "echo": True, "logprobs": 0,
                    "max_tokens": 1, "temperature": 0.0}
            choice = (self._post(body).get("choices") or [{}])[0]
            lp = choice.get("logprobs") or {}
            tokens, values, offsets = lp.get("tokens"), lp.get("token_logprobs"), lp.get("text_offset")
            if not tokens or values is None or offsets is None or len(values) < 2 or all(v is None for v in values[1:]):
                raise UserError(f"provenance: {self.url} returned no prompt log-probabilities for model "
                                f"{self.model!r} (echo=true with logprobs gave {sorted(lp) or 'nothing'}); tracing "
                                "needs an endpoint that scores the prompt, such as vLLM's completions API")
            shift = len(context)
            spans = [(a + shift, b + shift) for a, b in item["spans"]]
            full = context + item["text"]
            pairs, lps = [], []
            for k, (start, token) in enumerate(zip(offsets, tokens)):
                if start >= len(full) or start < shift:  # the context, or the token generated past the prompt
                    continue
                pairs.append((start, min(start + len(token), len(full))))
                lps.append(values[k])
            owners = token_sentences(full, pairs, spans)
            out.append(sentence_probs(lps, owners, len(spans)))
        return out
