"""LLM and embedding clients shared by the task agent and the design toolkit.

- :mod:`~harness.models.usage`: :class:`UsageMeter`, per-model request and token counts.
- :mod:`~harness.models.chat`: :class:`Endpoint` (the one retry policy), :class:`ChatClient`, :class:`AsyncLLM`.
- :mod:`~harness.models.embed`: :class:`RemoteEmbedder`, :class:`MiniLMEmbedder`, :class:`HashingEmbedder`.
- :mod:`~harness.models.local_llm`: the packaged GGUF (:func:`ensure_gguf`) and :class:`LocalModelServer`.
- :mod:`~harness.models.factory`: :class:`ModelSettings` -> :class:`Models` via :func:`open_models`.

Importing this package imports nothing heavy: torch loads on the first MiniLM embedding, and the local model
server starts on the first chat call.
"""

#: The embedded local chat model (Qwen2.5-Coder-0.5B-Instruct, Q4_K_M): every role's default, everywhere.
DEFAULT_LOCAL_MODEL = "qwen2.5-coder-0.5b"
#: Seconds per model request (one attempt) and attempts per call: generous, as an embedded CPU model is slow.
DEFAULT_TIMEOUT_S = 600.0
DEFAULT_MAX_ATTEMPTS = 3
