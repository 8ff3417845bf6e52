"""The evaluation harness: environment + task agent + memory design -> episodes -> score.

This package knows nothing of ``engine``, ``sandbox`` or ``archive``. It runs anywhere the benchmark
packages are installed, directly (``python -m harness.evaluate``) or inside a sandbox (``python -m harness.run``).
"""
