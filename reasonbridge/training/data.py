"""Training examples as tensors: chat encoding with the assistant-turn label mask and the trace's
segment ids, batch collation, and the resumable epoch order."""
from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Sampler

IGNORE = -100  # the label of a token that carries no loss
# Per-token segment ids. OTHER = assistant tokens outside every reasoning segment (the end-of-turn
# token, unlabelled text); they count towards L_out together with the answer span.
SEGMENT_IDS = {"other": 0, "strategic": 1, "tactical": 2, "operational": 3, "answer": 4}
# A trace segment of this level is text a test-time intervention injects (the organism's reflected
# traces: "Wait", GII's phrase and cite): context for what follows, never a label, whatever the loss,
# so the student learns what to write after a phrase, not to write phrases itself.
INJECTED = "intervention"


def unlabelled_segments(segments: list[dict], retracted: str = "mask") -> list[dict]:
    """The trace segments that carry no label: injected phrases, and the lines the trace itself
    retracts (marked ``retracted``: a flawed attempt before its correction) unless ``retracted`` is
    "learn"."""
    return [s for s in segments if s.get("level") == INJECTED or (retracted == "mask" and s.get("retracted"))]


def encode_chat(tokenizer, messages: list[dict], max_len: int, assistant_only: bool = True,
                segments: list[dict] | None = None, injected: list[dict] = ()) -> dict:
    """Token ids and labels for a conversation whose last message is the assistant's.

    The prompt part is rendered with `add_generation_prompt=True` and tokenized apart
    from the response, so the label mask starts exactly where generation would start.
    With `segments` (char offsets into the assistant message) the result also holds
    `segment_ids`: per token, the `SEGMENT_IDS` level its first character falls in
    (needs a fast tokenizer for the offset mapping). Tokens inside ``injected`` spans (or inside
    `segments` of level `INJECTED`) carry no label; other spans of ``injected`` keep their level.
    """
    prompt_text = tokenizer.apply_chat_template(messages[:-1], add_generation_prompt=True, tokenize=False)
    full_text = tokenizer.apply_chat_template(messages, tokenize=False)
    if not full_text.startswith(prompt_text):
        raise ValueError("chat template renders the prompt differently with and without the answer; "
                         "cannot locate the assistant turn")
    response_text = full_text[len(prompt_text):]
    prompt_ids = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
    injected = list(injected) + [seg for seg in segments or [] if seg.get("level") == INJECTED]
    segments = None if segments is None else [seg for seg in segments if seg.get("level") != INJECTED]
    offsets = segments is not None or bool(injected)
    enc = tokenizer(response_text, add_special_tokens=False, return_offsets_mapping=offsets)
    response_ids = enc["input_ids"]
    input_ids = (prompt_ids + response_ids)[:max_len]
    response_labels = list(response_ids)
    content = messages[-1]["content"]
    base = response_text.find(content) if offsets else 0
    if base < 0:
        raise ValueError("chat template alters the assistant message; cannot map trace segments to tokens")
    for seg in injected:
        for i, (start, _) in enumerate(enc["offset_mapping"]):
            if base + seg["start"] <= start < base + seg["end"]:
                response_labels[i] = IGNORE
    labels = ([IGNORE] * len(prompt_ids) if assistant_only else list(prompt_ids)) + response_labels
    out = {"input_ids": input_ids, "labels": labels[:max_len]}
    if segments is not None:
        char_level = np.zeros(len(response_text) + 1, dtype=np.int64)
        for seg in segments:
            if seg.get("level") not in SEGMENT_IDS or seg["level"] == "other":
                raise ValueError(f"trace segment {seg}: level must be one of "
                                 f"{[k for k in SEGMENT_IDS if k != 'other']}")
            char_level[base + seg["start"]:base + seg["end"]] = SEGMENT_IDS[seg["level"]]
        seg_ids = [int(char_level[min(start, len(response_text))]) for start, _ in enc["offset_mapping"]]
        out["segment_ids"] = ([0] * len(prompt_ids) + seg_ids)[:max_len]
    return out


def collate(batch: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(x["input_ids"]) for x in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    segs = torch.zeros((len(batch), width), dtype=torch.long) if "segment_ids" in batch[0] else None
    for i, x in enumerate(batch):
        n = len(x["input_ids"])
        ids[i, :n] = torch.tensor(x["input_ids"])
        labels[i, :n] = torch.tensor(x["labels"])
        mask[i, :n] = 1
        if segs is not None:
            segs[i, :n] = torch.tensor(x["segment_ids"])
    out = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    if segs is not None:
        out["segment_ids"] = segs
    return out


class EpochPermutation(Sampler):
    """The order `RandomSampler(generator=Generator().manual_seed(seed))` gives in each epoch
    (one permutation per epoch from one generator), but able to start part-way (resuming).

    With ``blocks`` (sizes of consecutive index ranges summing to n, a curriculum), each epoch goes
    through the blocks in order, shuffled within each."""

    def __init__(self, n: int, seed: int, blocks: tuple[int, ...] | None = None):
        self.n, self.seed, self.epoch, self.skip = n, seed, 0, 0
        if blocks is not None and sum(blocks) != n:
            raise ValueError(f"curriculum blocks {blocks} do not add up to {n} examples")
        self.blocks = tuple(blocks) if blocks and len(blocks) > 1 else None

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed)
        for _ in range(self.epoch + 1):
            if self.blocks is None:
                perm = torch.randperm(self.n, generator=generator)
            else:
                starts = [sum(self.blocks[:i]) for i in range(len(self.blocks))]
                perm = torch.cat([s + torch.randperm(b, generator=generator) for s, b in zip(starts, self.blocks)])
        return iter(perm[self.skip:].tolist())

    def __len__(self) -> int:
        return self.n - self.skip
