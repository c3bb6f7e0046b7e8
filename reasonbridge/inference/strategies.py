"""Test-time intervention strategies, independent of the generation engine.

An engine (``engine.py`` for transformers, ``vllm_backend.py`` for vLLM) generates text and,
each time a sequence tries to end its thinking, asks the strategy what to do with the text
written so far: accept the end, or suppress it and inject a phrase. Strategies see text
only, so every engine drives the same decisions.

End of thinking (`ThinkingFormat`): models with explicit delimiters (``think_end``, e.g.
``</think>``) end thinking by writing it. Models without them -- the embedded tiny student
and SmolLM2 write ``... Check: ... which matches.\\nFinal Answer: \\boxed{N}<|end|>`` --
end thinking by writing the answer marker (``Final Answer:``), and, when
``eos_ends_thinking`` is set, by stopping (EOS) before any marker.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from reasonbridge.inference.state import detect_state

KINDS = ("extension", "redirection", "verification")
# Which intervention answers which reasoning state (a complete state needs none).
INTERVENTION_FOR_STATE = {"partial": "extension", "uncertain": "redirection", "unverified": "verification"}


@dataclass(frozen=True)
class ThinkingFormat:
    think_start: str | None = None
    think_end: str | None = None
    answer_marker: str = "Final Answer:"
    eos_ends_thinking: bool = True

    @property
    def end_markers(self) -> tuple[str, ...]:
        """Text whose appearance ends the thinking phase."""
        return (self.think_end,) if self.think_end else (self.answer_marker,)

    @property
    def prompt_suffix(self) -> str:
        """Appended to the templated prompt so generation starts inside the thinking block."""
        return self.think_start or ""

    def forced_end(self, text_so_far: str) -> str:
        """Injected when the thinking budget runs out: close thinking, ask for the answer."""
        lead = "" if not text_so_far or text_so_far[-1].isspace() else "\n"
        return lead + (f"{self.think_end}\n" if self.think_end else "") + self.answer_marker


@dataclass
class Intervention:
    kind: str  # extension | redirection | verification
    text: str  # exactly what is appended to the sequence
    state: str | None = None  # the detected reasoning state that chose it (GII)
    cues: list[str] = field(default_factory=list)


@dataclass
class Episode:
    """Per-sequence bookkeeping shared by every engine."""

    problem: str
    interventions: list[dict] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    segment_start: int = 0  # char offset in the generated text where the current segment begins
    thinking_done: bool = False
    budget_exhausted: bool = False

    def counts(self) -> dict[str, int]:
        return {k: sum(1 for i in self.interventions if i["kind"] == k) for k in KINDS}


class Strategy:
    """Base: never intervenes (inference=none), but honours the thinking budget settings."""

    name = "none"

    def __init__(self, fmt: ThinkingFormat | None = None, *, max_interventions: int = 0,
                 min_thinking_tokens: int = 0, phrases: dict[str, list[str]] | None = None,
                 intervention_format: str = "{phrase}\n", answer_at_budget: bool = True,
                 cite: dict[str, str] | None = None):
        self.fmt = fmt or ThinkingFormat()
        self.max_interventions = max_interventions
        self.min_thinking_tokens = min_thinking_tokens
        self.phrases = {k: list(v) for k, v in (phrases or {"extension": ["Wait"]}).items()}
        self.intervention_format = intervention_format
        # every row of a comparison ends thinking the same way at the budget (s1's maximum):
        # True: the answer marker is forced; False: generation just stops there
        self.answer_at_budget = answer_at_budget
        self.cite = dict(cite or {})  # GII: doubt kind -> text appended to the phrase ({doubt})

    @property
    def intervenes(self) -> bool:
        """Whether the strategy may inject phrases."""
        return self.max_interventions > 0 or self.min_thinking_tokens > 0

    @property
    def watches_thinking(self) -> bool:
        """Whether the engine must track the end of thinking (for phrases or the budget)."""
        return self.intervenes or self.answer_at_budget

    def begin(self, problem: str) -> Episode:
        return Episode(problem=problem)

    def _phrase(self, episode: Episode, kind: str, text: str, doubt: tuple[str, str] | None = None) -> str:
        pool = self.phrases[kind]
        used = sum(1 for i in episode.interventions if i["kind"] == kind)
        lead = "" if not text or text[-1].isspace() else "\n"
        phrase = pool[used % len(pool)]
        if doubt is not None and doubt[0] in self.cite:
            phrase += self.cite[doubt[0]].format(doubt=doubt[1])
        return lead + self.intervention_format.format(phrase=phrase)

    def _decide(self, episode: Episode, text: str) -> Intervention | None:
        return None

    def on_end_of_thinking(self, episode: Episode, text: str, thinking_tokens: int) -> Intervention | None:
        """The sequence tried to end thinking after writing ``text`` (the end marker excluded).

        Returns the intervention to inject instead, or None to let the end stand. Records
        the decision on the episode.
        """
        if thinking_tokens < self.min_thinking_tokens:
            iv = Intervention("extension", self._phrase(episode, "extension", text), cues=["below min_thinking_tokens"])
        elif len(episode.interventions) >= self.max_interventions:
            iv = None
        else:
            iv = self._decide(episode, text)
        if iv is None:
            episode.thinking_done = True
            return None
        episode.interventions.append({"kind": iv.kind, "text": iv.text, "state": iv.state, "cues": iv.cues,
                                      "at_char": len(text)})
        episode.segment_start = len(text) + len(iv.text)
        return iv

    def on_budget_exhausted(self, episode: Episode, text: str) -> str:
        episode.budget_exhausted = True
        episode.thinking_done = True
        return self.fmt.forced_end(text)


class BudgetForcing(Strategy):
    """s1 budget forcing: suppress the end of thinking and append "Wait", up to N times."""

    name = "budget_forcing"

    def _decide(self, episode: Episode, text: str) -> Intervention:
        return Intervention("extension", self._phrase(episode, "extension", text))


class GuidedIntervention(Strategy):
    """GII: detect the reasoning state, then extend, redirect or ask for verification."""

    name = "gii"

    def _decide(self, episode: Episode, text: str) -> Intervention | None:
        report = detect_state(text[episode.segment_start:], problem=episode.problem,
                              full_text=_without_injections(episode, text))
        episode.states.append(report.state)
        kind = INTERVENTION_FOR_STATE.get(report.state)
        if kind is None:
            return None
        doubt = report.doubts[0] if report.doubts else None
        return Intervention(kind, self._phrase(episode, kind, text, doubt), state=report.state, cues=report.cues)


def _without_injections(episode: Episode, text: str) -> str:
    """The model's own text: injected phrases (and the doubts they cite) cut out, so a quantity
    that only GII's phrase names does not count as used."""
    out, pos = [], 0
    for iv in episode.interventions:
        start = iv["at_char"]
        out.append(text[pos:start])
        pos = start + len(iv["text"])
    return "".join(out) + text[pos:]


STRATEGIES = {"none": Strategy, "budget_forcing": BudgetForcing, "gii": GuidedIntervention}


def build_strategy(icfg) -> Strategy:
    """The strategy an `inference` config node describes."""
    fmt = ThinkingFormat(think_start=icfg.think_start, think_end=icfg.think_end,
                         answer_marker=icfg.answer_marker, eos_ends_thinking=icfg.eos_ends_thinking)
    phrases = {k: list(v) for k, v in icfg.phrases.items()}
    return STRATEGIES[icfg.name](fmt, max_interventions=icfg.max_interventions,
                                 min_thinking_tokens=icfg.min_thinking_tokens, phrases=phrases,
                                 intervention_format=icfg.intervention_format,
                                 answer_at_budget=icfg.budget_end == "answer", cite=dict(icfg.cite))
