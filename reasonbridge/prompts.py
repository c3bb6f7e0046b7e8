"""The one place that turns a problem into the student's chat messages."""
from __future__ import annotations

INSTRUCTION = "Solve the problem step by step. Put the final answer in \\boxed{}."


def user_message(problem: str) -> str:
    return f"{problem}\n{INSTRUCTION}"


def chat(problem: str, response: str | None = None) -> list[dict[str, str]]:
    messages = [{"role": "user", "content": user_message(problem)}]
    if response is not None:
        messages.append({"role": "assistant", "content": response})
    return messages
