"""The one place that turns a problem into the student's chat messages."""
from __future__ import annotations

INSTRUCTION = "Solve the problem step by step. Put the final answer in \\boxed{}."


def user_message(problem: str, instruction: str = INSTRUCTION) -> str:
    return f"{problem}\n{instruction}"


def chat(problem: str, response: str | None = None, instruction: str = INSTRUCTION) -> list[dict[str, str]]:
    """Benchmarks other than arithmetic pass their own ``instruction`` (option letter, code block)."""
    messages = [{"role": "user", "content": user_message(problem, instruction)}]
    if response is not None:
        messages.append({"role": "assistant", "content": response})
    return messages
