"""BabaIsAI: a pure-Python rule-puzzle grid world after "Baba Is You", as used by the BALROG benchmark.

Modules, one concept each:

- :mod:`.rules`: words, ``noun is property`` rules and reading them from text blocks on the grid.
- :mod:`.world`: grid state, movement, push chains, STOP / PUSH / DEFEAT / WIN / YOU, one turn.
- :mod:`.families` and :mod:`.levels`: level families and solver-checked, seed-deterministic generation.
- :mod:`.solver`: shortest winning plans within the step limit.
- :mod:`.text`: the observation text for an LLM.
- :mod:`.benchmark`: :class:`BabaIsAIBenchmark` (suite builder) and :class:`BabaIsAIEnv` (reset / step).
"""

from harness.envs.babaisai.benchmark import GOAL, BabaIsAIBenchmark, BabaIsAIEnv

__all__ = ["GOAL", "BabaIsAIBenchmark", "BabaIsAIEnv"]
