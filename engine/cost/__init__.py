"""Money: a price table per model (:mod:`~engine.cost.prices`, ``prices.toml``), what a run spends per design,
step and phase (:mod:`~engine.cost.ledger`: ``cost`` events in the archive), how much it will cost
(:mod:`~engine.cost.estimate`), and the evolve loop's hooks that enforce ``budget_usd``
(:mod:`~engine.cost.governor`); the report's section is :mod:`~engine.cost.html`."""
