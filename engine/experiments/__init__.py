"""Experiments that reproduce the ALMA paper's claims with the engine, one command each, resumable.

``python -m engine.experiments claims`` (:mod:`.cli`) plans one ``engine.api.evolve`` run per benchmark, search
rule and run seed (:mod:`.plan`), runs them resumably (:mod:`.runs`, records in :mod:`.layout`), deploys the
picks with other task agents (:mod:`.transfer`), and summarises the three claims with paired bootstrap intervals
(:mod:`.stats`, :mod:`.claims`) as ``claims.json``, a self-contained ``claims.html`` (:mod:`.page`,
:mod:`.charts`) and Markdown tables on stdout (:mod:`.text`). Fixed inputs are data files:
``benchmarks.toml`` (per-benchmark sizes, suites, step budgets) and ``paper.toml`` (the claims' wording and the
paper's figures).
"""
