"""``get_engine``: one call that gives an ``Engine`` for a model folder, by backend name.

    engine = get_engine("vllm", model_dir, tokenizer)
    try:
        samples = engine.generate_chat(conversations, SamplingConfig(...))
    finally:
        close_engine(engine)          # stops a server the engine started; no-op for HF

``"hf"``: ``HFEngine`` over the model in float32 (on the GPU when there is one).
``"vllm"``, by ``mode``:
  ``"auto"``: ``"offline"`` where ``vllm`` imports in this Python and a GPU is visible, else ``"subprocess"``;
  ``"offline"``: ``VLLMOfflineEngine``, ``vllm.LLM`` in this process;
  ``"subprocess"``: ``VLLMSubprocessEngine``, ``vllm.LLM`` in a child process of ``.venv-vllm`` (CPU; the fastest
  CPU path for bulk generation, one pipe message per ``generate`` call);
  ``"server"``: a ``VLLMServer`` (``vllm serve``; from ``.venv-vllm`` on CPU) with a ``VLLMHTTPEngine`` that owns it.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from .engine import Engine, HFEngine

BACKENDS = ("hf", "vllm")


def get_engine(kind: str, model_path: str | Path, tokenizer, *, batch_size: int = 512, mode: str = "auto",
               served_name: str = "policy", concurrency: int = 64, **vllm_kwargs) -> Engine:
    """``vllm_kwargs`` go to the chosen vLLM class (``VLLMServer`` in server mode), e.g. ``max_model_len``,
    ``log_path``; ``tensor_parallel_size``/``dtype`` for offline and server modes."""
    if kind == "hf":
        import torch
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=torch.float32)
        if torch.cuda.is_available():
            model = model.to("cuda")
        return HFEngine(model, tokenizer, batch_size=batch_size)
    if kind != "vllm":
        raise ValueError(f"unknown generation backend {kind!r}; choose one of {', '.join(BACKENDS)}")

    from .vllm_backend import VLLMOfflineEngine, VLLMServer, VLLMSubprocessEngine, cuda_available

    if mode == "auto":
        mode = "offline" if cuda_available() and importlib.util.find_spec("vllm") is not None else "subprocess"
    if mode == "offline":
        return VLLMOfflineEngine(model_path, tokenizer, **vllm_kwargs)
    if mode == "subprocess":
        return VLLMSubprocessEngine(model_path, tokenizer, **vllm_kwargs)
    if mode != "server":
        raise ValueError(f"mode must be 'auto', 'offline', 'subprocess' or 'server', not {mode!r}")
    server = VLLMServer(model_path, served_name, **vllm_kwargs).start()
    return server.engine(tokenizer, concurrency=concurrency, server=server)  # owns it: close() stops the server


def close_engine(engine: Engine) -> None:
    close = getattr(engine, "close", None)
    if callable(close):
        close()
