"""Token usage priced in the model provider's currency (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from workers.types import TokenTally


@dataclass(frozen=True)
class Prices:
    input_per_1k: float
    output_per_1k: float
    currency: str = "CNY"


def price_usage(usage: TokenTally, prices: Prices) -> float:
    """Cost of ``usage``, rounded to 1e-6 so sums stay stable in JSON."""
    cost = (
        usage.prompt_tokens / 1000.0 * prices.input_per_1k
        + usage.completion_tokens / 1000.0 * prices.output_per_1k
    )
    return round(cost, 6)
