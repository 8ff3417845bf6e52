"""A design as code: the :class:`~engine.code.genome.Genome` value and its libcst toolkit, splicing
(:mod:`~engine.code.splice`), the meta agent's patches (:mod:`~engine.code.patch`), structural mutation and
crossover (:mod:`~engine.code.mutate`), validation against the contract and the safety policy
(:mod:`~engine.code.validate` + ``policy.toml``) and code descriptors for novelty (:mod:`~engine.code.descriptors`).
Nothing here executes a design."""
