"""Teacher-forced token accuracy per part of a reference trace (problems of the synthetic suite).

The model reads the prompt and the symbolic teacher's defect-free trace; for each trace token we
ask whether its greedy prediction from the tokens before it is that token, and pool the answers
by the part of the trace the token belongs to:

- ``strategy``, ``plan``, ``check``, ``answer``: the lines of those names;
- ``step_text``: a step's wording (``Step 2:`` or the restated ``#2 up 4 :``, ``=``, the quantity's name);
- ``operand``, ``operation``, ``result``: the numbers and the sign of ``a op b = c``.

A student that writes well-formed solutions with the wrong numbers scores high on the first
kinds and low on the last ones; accuracy and the step metrics alone cannot show that.
"""
from __future__ import annotations

import re

import torch

from reasonbridge.problems import has_worked_solution
from reasonbridge.curation.teachers.symbolic import SymbolicTeacher
from reasonbridge.prompts import INSTRUCTION, chat

PARTS = ("strategy", "plan", "step_text", "operand", "operation", "result", "check", "answer")
_LINE_PARTS = {"Strategy:": "strategy", "Plan:": "plan", "Check:": "check", "Final Answer:": "answer"}
# a step line of the word problems (`Step 2: 3 + 4 = 7 (cost)`) or of the organism (`#2 up 4 : 3 + 4 = 7 (temp)`)
_STEP = re.compile(r"(?:Step \d+:|#\d+ \S+ \d+ :) (\d+) ([-+*/]) (\d+) = (\d+)")


def trace_parts(text: str) -> list[str]:
    """The part of every character of a trace (see the module docstring)."""
    parts: list[str] = []
    for line in text.split("\n"):
        label = next((part for prefix, part in _LINE_PARTS.items() if line.startswith(prefix)), "step_text")
        chars = [label] * len(line)
        step = _STEP.match(line)
        if step:
            for group, part in ((1, "operand"), (2, "operation"), (3, "operand"), (4, "result")):
                chars[step.start(group):step.end(group)] = [part] * (step.end(group) - step.start(group))
        parts += chars + [label]  # the newline belongs to its line
    return parts[:len(text)]


@torch.no_grad()
def forced_counts(model, tokenizer, problems: list[dict], instruction: str = INSTRUCTION, prompt_suffix: str = "",
                  max_logits: int = 2 ** 26) -> dict[str, list[int]]:
    """``{part: [right, total]}`` over the trace tokens of the problems that carry a reference
    solution (``meta.steps``); empty when none does or the tokenizer gives no offsets. Batches
    hold at most ``max_logits`` logits (rows x tokens x vocabulary), so a large vocabulary
    does not need gigabytes."""
    problems = [p for p in problems if has_worked_solution(p)]
    if not problems or not getattr(tokenizer, "is_fast", False):
        return {}
    teacher = SymbolicTeacher(defect_rate=0.0)
    counts = {part: [0, 0] for part in PARTS}
    rows = []
    for p in problems:
        text = teacher.generate(p)["text"]
        prompt = tokenizer.apply_chat_template(chat(p["problem"], instruction=instruction),
                                               add_generation_prompt=True, tokenize=False) + prompt_suffix
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        chars = trace_parts(text)
        labels = []
        for start, end in enc["offset_mapping"]:
            span = text[start:end]
            visible = len(span) - len(span.lstrip())  # a token's part is that of its first visible character
            labels.append(chars[start + (visible if visible < len(span) else 0)] if start < end else None)
        rows.append((prompt_ids + enc["input_ids"], len(prompt_ids), labels))
    model.eval()
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    rows.sort(key=lambda row: len(row[0]))  # shortest first: a batch is as wide as its last row
    vocab = max(len(tokenizer), getattr(getattr(model, "config", None), "vocab_size", 0) or 0)
    i = 0
    while i < len(rows):
        longest = len(rows[min(len(rows) - 1, i + 15)][0])  # the widest a batch of 16 could be
        batch = rows[i:i + max(1, min(16, max_logits // (longest * vocab)))]
        i += len(batch)
        width = len(batch[-1][0])
        ids = torch.tensor([r + [pad] * (width - len(r)) for r, _, _ in batch], device=device)
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r, _, _ in batch], device=device)
        predicted = model(input_ids=ids, attention_mask=mask).logits.argmax(-1).tolist()  # right padding: positions from 0
        for b, (row_ids, n_prompt, labels) in enumerate(batch):
            for k, part in enumerate(labels):
                if part is None:
                    continue
                at = n_prompt + k  # the token at `at` is predicted at `at - 1`
                counts[part][0] += int(predicted[b][at - 1] == row_ids[at])
                counts[part][1] += 1
    return counts


def forced_metrics(benchmark: str, counts: dict[str, list[int]]) -> dict[str, float]:
    """``forced/<part>/<benchmark>``: the share of that part's trace tokens predicted right."""
    return {f"forced/{part}/{benchmark}": right / total for part, (right, total) in counts.items() if total}
