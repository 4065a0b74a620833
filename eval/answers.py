"""Answer generation for the three benchmarks through the generation engine, written in the upstream formats.

One function per benchmark; each generates only what its answer file lacks (a rerun skips finished answers),
and writes a sidecar ``<answer file>.sampling.json`` with the sampling settings::

    engine = LazyEngine(model_dir, backend="hf")           # "vllm": generation.factory.get_engine("vllm", ...)
    alpaca_answers(engine, reference_rows, out / "model_outputs.json", "my-model", max_new_tokens=2048)
    mt_bench_answers(engine, questions, out / "model_answer" / "my-model.jsonl", "my-model", max_new_tokens=1024)
    arena_answers(engine, questions, out / "model_answer" / "my-model.jsonl", "my-model", max_new_tokens=4096)
    engine.close()

Formats and settings (eval-protocols.md):

* AlpacaEval: ``model_outputs.json``, a JSON list of ``{dataset, instruction, output, generator}`` in reference
  order. Sampling: :data:`ALPACA_SAMPLING` (alpaca_eval's model configs leave decoding to the model's authors).
* MT-Bench: FastChat answer JSONL ``{question_id, answer_id, model_id, choices: [{index, turns: [t1, t2]}],
  tstamp}``. Temperature per category from :func:`eval.mt_bench.answer_temperature` (0 = greedy); turn 2 is
  generated from the conversation so far (question 1, answer 1, question 2), as FastChat's ``gen_model_answer``.
* Arena-Hard v0.1: answer JSONL with ``choices[0].turns[0] = {content, token_len}`` and ``conv_metadata``
  (cl100k token count and markdown counts, which style control needs); temperature 0 (greedy), as v0.1's
  ``gen_answer_config.yaml``.

No system message is sent (the chat template adds its default one where it has one), as FastChat's and
Arena-Hard's generators do for models without a configured system prompt.

``max_new_tokens`` comes from the scale: the tiny config's ``generation.max_new_tokens``, or
:data:`REAL_MAX_NEW_TOKENS` for the real models.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from eval import alpaca_eval2 as ae
from eval import arena_hard as ah
from eval import mt_bench as mt
from eval.common import EvalInputError, PathLike, read_json, write_json
from generation.engine import load_tokenizer  # noqa: F401 (re-exported: the one tokenizer loader)

BENCHMARKS = ("alpaca_eval2", "mt_bench", "arena_hard")

# Real scale: upstream's generation lengths. FastChat gen_model_answer: --max-new-token 1024; Arena-Hard v0.1
# gen_answer_config.yaml: max_tokens 4096; AlpacaEval: 2048, the max_new_tokens of alpaca_eval's HF/vLLM model
# configs (models_configs/*/configs.yaml). The tiny scale takes configs/tiny.yaml's generation.max_new_tokens.
REAL_MAX_NEW_TOKENS = {"mt_bench": 1024, "arena_hard": 4096, "alpaca_eval2": 2048}

# Decoding per benchmark (the temperature; top_p 1, no top-k). MT-Bench's comes per category from
# eval.mt_bench.answer_temperature. AlpacaEval prescribes none: alpaca_eval's HF model configs mostly sample at
# temperature 0.7 (top_p 1.0); we use that. Arena-Hard v0.1 generates at temperature 0.
ALPACA_SAMPLING = {"temperature": 0.7, "top_p": 1.0}
ARENA_SAMPLING = {"temperature": 0.0, "top_p": 1.0}
ANSWER_SEED = 0


def max_new_tokens_for(benchmark: str, scale: str = "tiny", scale_config: Mapping | None = None) -> int:
    """The generation length of ``benchmark`` at ``scale`` ("tiny" or a real model name)."""
    if benchmark not in BENCHMARKS:
        raise ValueError(f"unknown benchmark {benchmark!r}; choose one of {', '.join(BENCHMARKS)}")
    if scale == "tiny" or (scale_config is not None and scale_config.get("scale") == "tiny"):
        if scale_config is None:
            from reproduce.scales import load_scale

            scale_config = load_scale("tiny")
        return int(scale_config["generation"]["max_new_tokens"])
    return REAL_MAX_NEW_TOKENS[benchmark]


# ----------------------------------------------------------------------------- engine

class LazyEngine:
    """An engine for one model folder, loaded on first use (so a fully resumed run never loads the model).

    ``backend``: "hf" (``HFEngine``) or "vllm" (``generation.factory.get_engine("vllm", ...)``, which picks
    in-process vLLM on a GPU and the ``.venv-vllm`` subprocess on CPU). ``engine_kwargs`` go to ``get_engine``.
    """

    def __init__(self, model_dir: PathLike | None, backend: str = "hf", tokenizer=None, **engine_kwargs):
        from generation.factory import BACKENDS

        if backend not in BACKENDS:
            raise EvalInputError(f"unknown generation backend {backend!r}; choose one of {', '.join(BACKENDS)}")
        self.model_dir = None if model_dir is None else Path(model_dir)
        self.backend = backend
        self._tokenizer = tokenizer
        self.engine_kwargs = engine_kwargs
        self._engine = None

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self._require_dir())
        return self._tokenizer

    def _require_dir(self) -> Path:
        if self.model_dir is None:
            raise EvalInputError("answers are missing and no model folder was given to generate them")
        if not (self.model_dir / "config.json").is_file():
            raise EvalInputError("not a model folder (no config.json)", self.model_dir)
        return self.model_dir

    def get(self):
        if self._engine is None:
            from generation.factory import get_engine

            self._engine = get_engine(self.backend, self._require_dir(), self.tokenizer, **self.engine_kwargs)
        return self._engine

    def generate_chat(self, conversations: Sequence[list[dict]], sampling) -> list:
        return self.get().generate_chat(conversations, sampling)

    def describe(self) -> dict:
        return {"backend": self.backend, "model_path": None if self.model_dir is None else str(self.model_dir)}

    def close(self) -> None:
        if self._engine is not None:
            from generation.factory import close_engine

            close_engine(self._engine)
            self._engine = None

    def __enter__(self) -> "LazyEngine":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _sampling(temperature: float, max_new_tokens: int, seed: int, top_p: float = 1.0):
    from generation.engine import SamplingConfig

    return SamplingConfig(temperature=float(temperature), top_p=float(top_p), top_k=0,
                          max_new_tokens=int(max_new_tokens), min_new_tokens=1, seed=int(seed))


def _generate_grouped(engine, conversations: Sequence[list[dict]], temperatures: Sequence[float],
                      max_new_tokens: int, seed: int, top_p: float = 1.0) -> list[str]:
    """Texts for ``conversations``, one engine call per distinct temperature (0 = greedy)."""
    out: list[str | None] = [None] * len(conversations)
    for t in sorted(set(temperatures)):
        idx = [i for i, ti in enumerate(temperatures) if ti == t]
        samples = engine.generate_chat([conversations[i] for i in idx], _sampling(t, max_new_tokens, seed, top_p))
        for i, s in zip(idx, samples):
            out[i] = s.text
    return out  # type: ignore[return-value]


# ----------------------------------------------------------------------------- sidecar

def sidecar_path(answer_path: PathLike) -> Path:
    p = Path(answer_path)
    return p.with_name(p.name.rsplit(".", 1)[0] + ".sampling.json")


def _check_sidecar(answer_path: Path, settings: Mapping, engine, n_missing: int) -> None:
    """Refuse to mix answers generated with other sampling settings into one file."""
    side = sidecar_path(answer_path)
    if not side.is_file():
        return
    old = read_json(side).get("settings")
    if old is not None and old != dict(settings):
        raise EvalInputError(f"answers in {answer_path} were generated with other settings ({old}); now asked for "
                             f"{dict(settings)}. Remove the answer file (and its sidecar) or write elsewhere "
                             f"({n_missing} answers are missing)", side)


def _write_sidecar(answer_path: Path, benchmark: str, model_id: str, settings: Mapping, engine,
                   n_answers: int, n_generated: int, extra: Mapping | None = None) -> None:
    side = sidecar_path(answer_path)
    previous = read_json(side) if side.is_file() else {}
    record = {"benchmark": benchmark, "model_id": model_id, "answers": str(answer_path.name),
              "settings": dict(settings), "n_answers": n_answers,
              "generated": previous.get("generated", []) + ([{**engine.describe(), "n": n_generated,
                                                               "time": time.time()}] if n_generated else []),
              "note": "temperature 0 means greedy decoding; top_k 0 means off; min_new_tokens 1",
              **(extra or {})}
    write_json(side, record)


# ----------------------------------------------------------------------------- AlpacaEval

def alpaca_answers(engine, reference: Sequence[Mapping], path: PathLike, model_id: str, *, max_new_tokens: int,
                   temperature: float = ALPACA_SAMPLING["temperature"], top_p: float = ALPACA_SAMPLING["top_p"],
                   seed: int = ANSWER_SEED) -> list[dict]:
    """``model_outputs.json`` rows for ``reference``'s instructions (in reference order), generating only the
    instructions the file lacks. Returns the rows for ``reference``."""
    path = Path(path)
    settings = {"temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens, "seed": seed}
    existing = {r["instruction"]: r for r in ae.load_outputs(path)} if path.is_file() else {}
    missing = [r for r in reference if r["instruction"] not in existing]
    if missing:
        _check_sidecar(path, settings, engine, len(missing))
        conversations = [[{"role": "user", "content": r["instruction"]}] for r in missing]
        texts = _generate_grouped(engine, conversations, [temperature] * len(missing), max_new_tokens, seed, top_p)
        for r, text in zip(missing, texts):
            existing[r["instruction"]] = {"dataset": r.get("dataset"), "instruction": r["instruction"],
                                          "output": text, "generator": model_id}
        order = {r["instruction"]: i for i, r in enumerate(reference)}
        rows = sorted(existing.values(), key=lambda r: order.get(r["instruction"], len(order)))
        ae.write_model_outputs(path, rows)
        _write_sidecar(path, "alpaca_eval2", model_id, settings, engine, len(rows), len(missing))
    elif not sidecar_path(path).is_file():
        _write_sidecar(path, "alpaca_eval2", model_id, {}, engine, len(existing), 0,
                       {"note": "answers were provided, not generated here; sampling settings unknown"})
    return [existing[r["instruction"]] for r in reference]


# ----------------------------------------------------------------------------- MT-Bench

def mt_bench_answers(engine, questions: Sequence[Mapping], path: PathLike, model_id: str, *, max_new_tokens: int,
                     seed: int = ANSWER_SEED,
                     temperature_of: Callable[[str], float] = mt.answer_temperature) -> dict:
    """FastChat answers for ``questions`` (all turns), generating the questions the file lacks.

    Turn k is generated from the conversation so far: question 1, answer 1, ..., question k. Temperatures per
    category (``temperature_of``); 0 is greedy. Returns ``{question_id: record}`` for ``questions``.
    """
    path = Path(path)
    categories = sorted(set(mt.CATEGORY_TEMPERATURE) | {q["category"] for q in questions})
    settings = {"temperature_by_category": {c: temperature_of(c) for c in categories}, "top_p": 1.0,
                "max_new_tokens": max_new_tokens, "seed": seed}
    existing = mt.read_answers(path) if path.is_file() else {}
    missing = [q for q in questions if q["question_id"] not in existing]
    if missing:
        _check_sidecar(path, settings, engine, len(missing))
        conversations: list[list[dict]] = [[] for _ in missing]
        turns: list[list[str]] = [[] for _ in missing]
        temps = [temperature_of(q["category"]) for q in missing]
        for k in range(max(len(q["turns"]) for q in missing)):
            active = [i for i, q in enumerate(missing) if k < len(q["turns"])]
            for i in active:
                conversations[i].append({"role": "user", "content": missing[i]["turns"][k]})
            texts = _generate_grouped(engine, [conversations[i] for i in active], [temps[i] for i in active],
                                      max_new_tokens, seed + k)
            for i, text in zip(active, texts):
                conversations[i].append({"role": "assistant", "content": text})
                turns[i].append(text)
        for q, t in zip(missing, turns):
            existing[q["question_id"]] = mt.answer_record(q["question_id"], model_id, t)
        mt.write_answers(path, list(existing.values()))
        _write_sidecar(path, "mt_bench", model_id, settings, engine, len(existing), len(missing))
    elif not sidecar_path(path).is_file():
        _write_sidecar(path, "mt_bench", model_id, {}, engine, len(existing), 0,
                       {"note": "answers were provided, not generated here; sampling settings unknown"})
    return {q["question_id"]: existing[q["question_id"]] for q in questions}


# ----------------------------------------------------------------------------- Arena-Hard

def arena_answers(engine, questions: Sequence[ah.ArenaQuestion], path: PathLike, model_id: str, *,
                  max_new_tokens: int, temperature: float = ARENA_SAMPLING["temperature"],
                  seed: int = ANSWER_SEED) -> dict[Any, ah.ArenaAnswer]:
    """Arena-Hard v0.1 answers (with ``token_len`` and ``conv_metadata``) for ``questions``, generating the
    questions the file lacks. Returns ``{question_id: ArenaAnswer}`` for ``questions``."""
    path = Path(path)
    settings = {"temperature": temperature, "top_p": 1.0, "max_new_tokens": max_new_tokens, "seed": seed}
    records: dict[Any, dict] = {}
    if path.is_file():
        from eval.common import read_jsonl

        records = {rec.get("question_id", rec.get("uid")): rec for _, rec in read_jsonl(path)}
    missing = [q for q in questions if q.question_id not in records]
    if missing:
        _check_sidecar(path, settings, engine, len(missing))
        texts = _generate_grouped(engine, [[{"role": "user", "content": q.prompt}] for q in missing],
                                  [temperature] * len(missing), max_new_tokens, seed)
        for q, text in zip(missing, texts):
            records[q.question_id] = ah.answer_record(q.question_id, model_id, text)
        order = {q.question_id: i for i, q in enumerate(questions)}
        ah.write_answers(path, sorted(records.values(), key=lambda r: order.get(r["question_id"], len(order))))
        _write_sidecar(path, "arena_hard", model_id, settings, engine, len(records), len(missing))
    elif not sidecar_path(path).is_file():
        _write_sidecar(path, "arena_hard", model_id, {}, engine, len(records), 0,
                       {"note": "answers were provided, not generated here; sampling settings unknown"})
    answers = ah.load_answers(path)
    return {q.question_id: answers[q.question_id] for q in questions}
