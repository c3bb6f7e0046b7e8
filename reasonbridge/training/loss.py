"""The hierarchical loss (paper §3.2): one cross-entropy term per level of the reasoning trace."""
from __future__ import annotations

import torch

from reasonbridge.training.data import IGNORE, SEGMENT_IDS

LOSS_TERMS = ("out", "strategic", "tactical", "operational")


def hierarchical_loss(logits: torch.Tensor, labels: torch.Tensor, segment_ids: torch.Tensor,
                      weights: dict[str, float]) -> tuple[torch.Tensor, dict[str, float]]:
    """λ_out·L_out + λ_strat·L_strat + λ_tact·L_tact + λ_op·L_op, each the mean token CE over
    that level's tokens in the batch. L_out covers the answer span and every assistant token
    outside the reasoning segments (so the end-of-turn token is learned); a trace without
    segments therefore trains as λ_out × plain SFT. A level absent from the batch adds 0."""
    shift_logits = logits[:, :-1].float()
    shift_labels = labels[:, 1:]
    shift_segs = segment_ids[:, 1:]
    ce = torch.nn.functional.cross_entropy(shift_logits.reshape(-1, shift_logits.size(-1)),
                                           shift_labels.reshape(-1), ignore_index=IGNORE, reduction="none")
    valid = (shift_labels.reshape(-1) != IGNORE)
    segs = shift_segs.reshape(-1)
    masks = {"out": valid & ((segs == SEGMENT_IDS["answer"]) | (segs == SEGMENT_IDS["other"])),
             "strategic": valid & (segs == SEGMENT_IDS["strategic"]),
             "tactical": valid & (segs == SEGMENT_IDS["tactical"]),
             "operational": valid & (segs == SEGMENT_IDS["operational"])}
    total = ce.new_zeros(())
    terms: dict[str, float] = {}
    for name, m in masks.items():
        if m.any():
            term = ce[m].mean()
            total = total + weights[name] * term
            terms[name] = term.item()
    return total, terms
