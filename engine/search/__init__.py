"""The search: the evolve loop (:mod:`~engine.search.loop`), the meta agent and its prompts
(:mod:`~engine.search.meta_agent`, ``prompts/*.txt``), the one evaluation path (:mod:`~engine.search.evaluator`: a
run's sandbox backend, broker and job runner; :mod:`~engine.search.executors`: local or Ray), the logs the meta
agent reads (:mod:`~engine.search.logs`) and the printed held-out table (:mod:`~engine.search.heldout_table`)."""
