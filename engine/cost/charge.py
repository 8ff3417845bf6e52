"""A :class:`Charge`: tokens by (role, model), what a price table turns into dollars.

Roles: ``meta`` (the meta agent's calls, made by the engine), ``task`` (chat calls of the task agent and of the
designs, through the host broker) and ``embed`` (embedding calls through the broker). Counts are ints in what
was spent and floats in estimates (a mean of evaluations).
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.cost.prices import PriceTable

ROLES = ("meta", "task", "embed")


@dataclass
class Line:
    prompt: float = 0.0
    completion: float = 0.0
    requests: float = 0.0

    @property
    def tokens(self) -> float:
        return self.prompt + self.completion


@dataclass(frozen=True)
class Cost:
    """Dollars of a charge: ``usd`` over the models with a price; ``unknown`` names those without one (their
    tokens are in ``unknown_tokens``)."""

    usd: float
    unknown: tuple[str, ...] = ()
    unknown_tokens: float = 0.0

    @property
    def known(self) -> bool:
        return not self.unknown


class Charge:
    """Tokens (prompt, completion) and requests per (role, model)."""

    def __init__(self, lines: dict[tuple[str, str], Line] | None = None):
        self.lines: dict[tuple[str, str], Line] = {k: Line(v.prompt, v.completion, v.requests)
                                                   for k, v in (lines or {}).items()}

    def add(self, role: str, model: str, prompt: float = 0, completion: float = 0, requests: float = 0) -> Charge:
        if role not in ROLES:
            raise ValueError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if not (prompt or completion or requests):
            return self
        line = self.lines.setdefault((role, model), Line())
        line.prompt += prompt
        line.completion += completion
        line.requests += requests
        return self

    def __add__(self, other: Charge) -> Charge:
        out = Charge(self.lines)
        for (role, model), line in other.lines.items():
            out.add(role, model, line.prompt, line.completion, line.requests)
        return out

    def __sub__(self, other: Charge) -> Charge:
        """What ``self`` holds beyond ``other`` (negative lines dropped): a meter's growth."""
        out = Charge()
        for key, line in self.lines.items():
            before = other.lines.get(key, Line())
            out.add(*key, max(0.0, line.prompt - before.prompt), max(0.0, line.completion - before.completion),
                    max(0.0, line.requests - before.requests))
        return out

    def scaled(self, factor: float) -> Charge:
        return Charge({k: Line(v.prompt * factor, v.completion * factor, v.requests * factor)
                       for k, v in self.lines.items()})

    @property
    def tokens(self) -> float:
        return sum(line.tokens for line in self.lines.values())

    def tokens_by_role(self) -> dict[str, float]:
        out = dict.fromkeys(ROLES, 0.0)
        for (role, _model), line in self.lines.items():
            out[role] += line.tokens
        return out

    def models(self) -> set[str]:
        return {model for (_role, model) in self.lines}

    def cost(self, prices: PriceTable) -> Cost:
        usd, unknown, unknown_tokens = 0.0, set(), 0.0
        for (_role, model), line in self.lines.items():
            price = prices.lookup(model)
            if price is None:
                unknown.add(model)
                unknown_tokens += line.tokens
            else:
                usd += price.usd(line.prompt, line.completion)
        return Cost(usd, tuple(sorted(unknown)), unknown_tokens)

    def usd(self, prices: PriceTable) -> float | None:
        """Dollars, or None when a model of the charge has no price."""
        cost = self.cost(prices)
        return cost.usd if cost.known else None

    def __bool__(self) -> bool:
        return any(line.tokens or line.requests for line in self.lines.values())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Charge) and self.to_json() == other.to_json()

    def __repr__(self) -> str:
        return f"Charge({self.to_json()!r})"

    # ------------------------------------------------------------------ JSON (the archive's cost events)
    def to_json(self) -> list[dict]:
        return [{"role": role, "model": model, "prompt_tokens": _num(line.prompt),
                 "completion_tokens": _num(line.completion), "requests": _num(line.requests)}
                for (role, model), line in sorted(self.lines.items()) if line.tokens or line.requests]

    @classmethod
    def from_json(cls, data) -> Charge:
        out = cls()
        for item in data or []:
            if isinstance(item, dict) and item.get("role") in ROLES:
                out.add(item["role"], str(item.get("model", "?")), float(item.get("prompt_tokens", 0)),
                        float(item.get("completion_tokens", 0)), float(item.get("requests", 0)))
        return out


def _num(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(value, 3)


def mean(charges: list[Charge]) -> Charge:
    """The mean charge (an empty list: nothing)."""
    total = Charge()
    for c in charges:
        total = total + c
    return total.scaled(1 / len(charges)) if charges else total


def largest(charges: list[Charge], prices: PriceTable) -> Charge:
    """The charge that costs most (by dollars where priced, else by tokens); nothing for an empty list."""
    return max(charges, key=lambda c: (c.cost(prices).usd, c.tokens), default=Charge())
