"""Batched transformers generation driven by a `Strategy`, continuing from the KV cache.

Each step feeds every active sequence its queue in one forward pass: normally the token it
just produced; after an intervention the whole injected phrase (other rows' shorter queues
are left-padded with masked columns). The prefix already processed is never fed again. A
suppressed end-of-thinking marker is removed by masking its cache columns; positions
count only unmasked tokens, so the sequence the model conditions on is exactly
``prompt + kept tokens + injections``.
Finished sequences leave the batch (their rows are dropped from the cache).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import DynamicCache

from reasonbridge.models.generation import in_length_batches
from reasonbridge.inference.strategies import Episode, Strategy

_TRIGGERS: dict[tuple, torch.Tensor] = {}


@dataclass
class _Row:
    episode: Episode
    prompt_ids: list[int]
    ids: list[int] = field(default_factory=list)  # conditioned ids after the prompt (kept + injected)
    cols: list[int] = field(default_factory=list)  # cache column of each fed entry of `ids`
    pending: list[int] = field(default_factory=list)
    generated: int = 0  # tokens the model produced, suppressed ones included
    thinking_tokens: int = 0
    stop: str | None = None  # eos | max_new_tokens


def _trigger_mask(tokenizer, markers: tuple[str, ...], size: int) -> torch.Tensor:
    """Token ids whose text contains the last character of a marker: only those can
    complete one, so the engine decodes text only after sampling such a token."""
    key = (id(tokenizer), markers, size)
    if key not in _TRIGGERS:
        last = {m[-1] for m in markers}
        n = min(size, len(tokenizer))
        texts = tokenizer.batch_decode([[i] for i in range(n)], skip_special_tokens=False)
        raw = tokenizer.convert_ids_to_tokens(list(range(n)))
        mask = torch.zeros(size, dtype=torch.bool)
        for i, (t, r) in enumerate(zip(texts, raw)):
            if any(c in t or c in (r or "") for c in last):
                mask[i] = True
        _TRIGGERS[key] = mask
    return _TRIGGERS[key]


def _find_marker(tokenizer, ids: list[int], markers: tuple[str, ...]) -> tuple[int, str] | None:
    """If the last token completed a marker: (index of the first token holding it, the text
    of that token before the marker). None otherwise."""
    window = max(len(m) for m in markers) + 2
    tail = ids[-window:]
    text = tokenizer.decode(tail, skip_special_tokens=False)
    if not any(m in text for m in markers):
        return None
    before_last = len(tokenizer.decode(tail[:-1], skip_special_tokens=False))
    for m in markers:
        pos = text.rfind(m)
        if pos < 0 or pos + len(m) <= before_last:
            continue
        for k in range(1, len(tail) + 1):
            piece = tokenizer.decode(ids[-k:], skip_special_tokens=False)
            if m in piece:
                return len(ids) - k, piece[:piece.find(m)]
    return None


def _sample(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> torch.Tensor:
    if temperature == 0.0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        drop = sorted_probs.cumsum(-1) - sorted_probs > top_p  # keep the smallest set reaching top_p
        sorted_probs[drop] = 0.0
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.inference_mode()
def generate_with_strategy(model, tokenizer, prompts: list[str], problems: list[str], strategy: Strategy, *,
                           max_new_tokens: int, batch_size: int, max_thinking_tokens: int | None = None,
                           temperature: float = 0.0, top_p: float = 1.0, seed: int = 0,
                           progress: bool = True, desc: str = "generate", return_ids: bool = False) -> list[dict]:
    """Generate for already-templated prompts under `strategy`; one record per prompt.

    ``max_new_tokens`` caps the tokens the model produces (injected text excluded);
    ``max_thinking_tokens`` (None: no budget) is where thinking is forced to end.
    Sampling (temperature > 0) draws from one generator seeded with ``seed``.
    ``return_ids`` adds the token ids (``prompt_ids``, ``ids``) to each record.
    """
    generator = torch.Generator().manual_seed(seed) if temperature > 0 else None
    tokenizer.padding_side = "left"

    def run(idx: list[int]) -> list[dict]:
        rows = _run_batch(model, tokenizer, [prompts[i] for i in idx], [problems[i] for i in idx], strategy,
                          max_new_tokens=max_new_tokens, max_thinking_tokens=max_thinking_tokens,
                          temperature=temperature, top_p=top_p, generator=generator)
        records = []
        for row in rows:
            record = _record(tokenizer, row, strategy)
            if return_ids:
                record.update(prompt_ids=row.prompt_ids, ids=row.ids)
            records.append(record)
        return records

    return in_length_batches(model, prompts, batch_size, run, progress=progress, desc=desc)


def _record(tokenizer, row: _Row, strategy: Strategy) -> dict:
    ep = row.episode
    return {
        "output": tokenizer.decode(row.ids, skip_special_tokens=True),
        "tokens": row.generated,
        "hit_limit": row.stop == "max_new_tokens",
        "stop": row.stop,
        "interventions": ep.counts() if strategy.name != "none" else {},  # none keeps the plain record
        "intervention_log": ep.interventions,
        "states": ep.states,
        "budget_exhausted": ep.budget_exhausted,
        "conditioned_on": tokenizer.decode(row.prompt_ids + row.ids, skip_special_tokens=False),
        "stop_tokens": [tokenizer.eos_token],
        "end_of_thinking": _end_of_thinking(tokenizer, strategy),
    }


def _end_of_thinking(tokenizer, strategy: Strategy) -> list[str]:
    """What the strategy treated as the model trying to end its thinking."""
    if not strategy.watches_thinking:
        return []
    return list(strategy.fmt.end_markers) + ([tokenizer.eos_token] if strategy.fmt.eos_ends_thinking else [])


def _run_batch(model, tokenizer, prompts: list[str], problems: list[str], strategy: Strategy, *,
               max_new_tokens: int, max_thinking_tokens: int | None, temperature: float, top_p: float,
               generator: torch.Generator | None) -> list[_Row]:
    device = model.device
    eos = tokenizer.eos_token_id
    fmt = strategy.fmt
    watch = strategy.watches_thinking
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    mask = enc["attention_mask"].to(device)
    rows = [_Row(episode=strategy.begin(problem), prompt_ids=enc["input_ids"][b][mask[b].bool()].tolist())
            for b, problem in enumerate(problems)]
    all_rows = list(rows)
    next_pos = mask.sum(-1)
    cache = DynamicCache(config=model.config)
    out = model(input_ids=enc["input_ids"].to(device), attention_mask=mask,
                position_ids=(mask.cumsum(-1) - 1).clamp(min=0), past_key_values=cache, use_cache=True,
                logits_to_keep=1)
    logits = out.logits
    triggers = _trigger_mask(tokenizer, fmt.end_markers, logits.shape[-1]).to(device) if watch else None

    while rows:
        next_tokens = _sample(logits[:, -1].float(), temperature, top_p, generator)
        tokens = next_tokens.tolist()
        hits = triggers[next_tokens].tolist() if watch else None
        finished = False
        for b, (row, t) in enumerate(zip(rows, tokens)):
            row.generated += 1
            ep = row.episode
            thinking = not ep.thinking_done
            if thinking:
                row.thinking_tokens += 1
            if t == eos:
                if thinking and watch and fmt.eos_ends_thinking:
                    text = tokenizer.decode(row.ids, skip_special_tokens=False)
                    iv = strategy.on_end_of_thinking(ep, text, row.thinking_tokens)
                    if iv is not None:
                        row.pending = tokenizer.encode(iv.text, add_special_tokens=False)
                        row.ids += row.pending
                        ep.interventions[-1]["at_token"] = len(row.ids)
                        finished |= _check_limit(row, max_new_tokens)
                        continue
                row.ids.append(t)
                row.stop, finished = "eos", True
                continue
            row.ids.append(t)
            row.pending = [t]
            if thinking and watch and hits[b]:
                found = _find_marker(tokenizer, row.ids, fmt.end_markers)
                if found is not None:
                    j, lost = found
                    text = tokenizer.decode(row.ids[:j], skip_special_tokens=False) + lost
                    iv = strategy.on_end_of_thinking(ep, text, row.thinking_tokens)
                    if iv is not None:
                        # the marker's tokens already in the cache are masked; the last one was never fed
                        if row.cols[j:]:
                            mask[b, row.cols[j:]] = 0
                        del row.ids[j:], row.cols[j:]
                        row.pending = tokenizer.encode(lost + iv.text, add_special_tokens=False)
                        row.ids += row.pending
                        ep.interventions[-1]["at_token"] = len(row.ids)
                        next_pos[b] = len(row.prompt_ids) + len(row.cols)
                    thinking = not ep.thinking_done
            if thinking and max_thinking_tokens is not None and row.thinking_tokens >= max_thinking_tokens:
                forced = tokenizer.encode(strategy.on_budget_exhausted(ep, tokenizer.decode(row.ids, skip_special_tokens=False)),
                                          add_special_tokens=False)
                row.pending = row.pending + forced
                row.ids += forced
            finished |= _check_limit(row, max_new_tokens)

        if finished:
            keep = [b for b, r in enumerate(rows) if r.stop is None]
            if not keep:
                break
            if len(keep) < len(rows):
                keep_t = torch.tensor(keep, device=device)
                for layer in cache.layers:
                    layer.batch_select_indices(keep_t)
                mask, next_pos = mask[keep_t], next_pos[keep_t]
                rows = [rows[b] for b in keep]

        logits, mask = _feed(model, rows, cache, mask, next_pos, device)
    return all_rows


def _check_limit(row: _Row, max_new_tokens: int) -> bool:
    if row.generated >= max_new_tokens:
        row.stop = "max_new_tokens"
        return True
    return False


def _feed(model, rows: list[_Row], cache: DynamicCache, mask: torch.Tensor, next_pos: torch.Tensor,
          device) -> tuple[torch.Tensor, torch.Tensor]:
    """One forward pass feeding every row its whole queue: one token for a row that is
    decoding, the injected phrase for a row that was just intervened on. Shorter queues are
    left-padded with masked columns, so the last column is real for every row and an
    intervention costs one forward pass, not one per injected token."""
    k = max(len(r.pending) for r in rows)
    col = mask.shape[1]
    inp = torch.zeros((len(rows), k), dtype=torch.long)
    new_mask = torch.zeros((len(rows), k), dtype=mask.dtype)
    pos = torch.zeros((len(rows), k), dtype=torch.long)
    for b, r in enumerate(rows):
        n = len(r.pending)
        start = k - n
        inp[b, start:] = torch.tensor(r.pending)
        new_mask[b, start:] = 1
        pos[b, start:] = int(next_pos[b]) + torch.arange(n)
        r.cols.extend(range(col + start, col + k))
        next_pos[b] += n
        r.pending = []
    mask = torch.cat([mask, new_mask.to(device)], dim=1)
    out = model(input_ids=inp.to(device), attention_mask=mask, position_ids=pos.to(device), past_key_values=cache,
                use_cache=True, logits_to_keep=1)
    return out.logits, mask
