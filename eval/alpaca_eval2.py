"""AlpacaEval 2.0 with the ``weighted_alpaca_eval_gpt4_turbo`` protocol, judge-independent parts.

Flow for a judge runner (``judge(messages, **kwargs)`` returns an OpenAI chat-completion reply)::

    reference = load_outputs(reference_json)            # 805 baseline rows, canonical order
    model = load_outputs(model_outputs_json)
    items = build_judge_items(reference, model, load_judge_template())
    kwargs = judge_request_kwargs(load_judge_config())  # max_tokens 1, temperature 1, logprobs, top 5
    rows = [annotation_row(it, judge(it.messages, **kwargs) if it.needs_judge else None) for it in items]
    write_annotations(out / "annotations.json", rows)
    metrics = compute_metrics(rows, df_gamed=...)      # WR always; LC from df_gamed.csv or a labelled variant

Conventions as upstream: ``output_1`` is the baseline, ``output_2`` the evaluated model, and the stored
``preference`` lies in [1, 2] (1 = baseline better, 2 = model better, NaN = no usable verdict).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import math
import os
import random
import re
import warnings
from dataclasses import dataclass, field as dc_field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from eval.common import (EvalInputError, PathLike, as_plain, field, first_choice, read_json_rows,
                         read_yaml, write_json)

ANNOTATOR = "weighted_alpaca_eval_gpt4_turbo"
CONFIG_SUBPATH = "weighted_alpaca_eval_gpt4_turbo/configs.yaml"
TEMPLATE_SUBPATH = "alpaca_eval_clf_gpt4_turbo/alpaca_eval_clf.txt"
SWITCH_SEED_PREFIX = "is_switched_outputs"  # upstream's switch column name, used in the coin's seed
NUMERATOR_TOKEN = "m"  # the identifier given to output_1 in the prompt
DENOMINATOR_TOKENS = ("m", "M")
IDENTICAL_PREFERENCE = 1.5
REQUEST_KWARG_KEYS = ("max_tokens", "temperature", "top_p", "logprobs", "top_logprobs", "seed", "stop")
LC_VARIANT_UPSTREAM = "length_controlled_v1 (alpaca_eval, df_gamed.csv)"
LC_VARIANT_MINIMAL = "minimal_no_gamed (no df_gamed.csv)"
LC_VARIANT_NOREG = "noreg_no_gamed (instruction_difficulty.csv, no df_gamed.csv)"
_PLACEHOLDER = re.compile(r"{([^ \s]+?)}")  # upstream's placeholder pattern (no whitespace inside)


# ----------------------------------------------------------------------------- outputs files

def load_outputs(path: PathLike) -> list[dict]:
    """Read a ``model_outputs.json``-style list of ``{instruction, output[, generator, dataset]}``.

    Duplicate instructions are rejected (upstream joins on the instruction text).
    """
    seen: dict[str, int] = {}
    rows = []
    for i, (label, record) in enumerate(read_json_rows(path, ("instruction", "output"), "outputs", "record")):
        for key in ("generator", "dataset"):  # optional, but text when present
            if record.get(key) is not None:
                field(record, key, str, path, label=f"{label}.{key}")
        instruction = record["instruction"]
        if instruction in seen:
            raise EvalInputError(f"{label} repeats the instruction of record {seen[instruction]}", path,
                                 field=f"{label}.instruction")
        seen[instruction] = i
        rows.append(dict(record))
    return rows


def make_model_outputs(reference: Sequence[Mapping], outputs: Sequence[str], generator: str) -> list[dict]:
    """Model-output rows for ``outputs`` (in reference order), copying instruction and dataset."""
    if len(outputs) != len(reference):
        raise ValueError(f"{len(outputs)} outputs for {len(reference)} reference instructions")
    return [{"dataset": ref.get("dataset"), "instruction": ref["instruction"], "output": out,
             "generator": generator} for ref, out in zip(reference, outputs)]


def write_model_outputs(path: PathLike, outputs: Sequence[Mapping]) -> None:
    """Write ``model_outputs.json`` (a JSON list, upstream's layout)."""
    write_json(path, [dict(o) for o in outputs])


# ----------------------------------------------------------------------------- judge prompt and config

def package_configs_dir() -> Path:
    """``evaluators_configs/`` of the installed alpaca_eval package (found without importing it)."""
    spec = importlib.util.find_spec("alpaca_eval")
    if spec is None or not spec.submodule_search_locations:
        raise EvalInputError("the alpaca_eval package is not installed; pass the template/config path")
    return Path(list(spec.submodule_search_locations)[0]) / "evaluators_configs"


def load_judge_template(path: PathLike | None = None) -> str:
    """The judge prompt text (ChatML-marked); default: the installed package's clf template."""
    path = Path(path) if path is not None else package_configs_dir() / TEMPLATE_SUBPATH
    if not path.is_file():
        raise EvalInputError("judge template not found", path)
    text = path.read_text(encoding="utf-8")
    missing = [p for p in ("instruction", "output_1", "output_2") if "{" + p + "}" not in text]
    if missing:
        raise EvalInputError(f"template lacks placeholder(s) {missing}", path)
    return text


def load_judge_config(path: PathLike | None = None, annotator: str = ANNOTATOR) -> dict:
    """The annotator's entry of an evaluator ``configs.yaml`` (default: the installed weighted config)."""
    path = Path(path) if path is not None else package_configs_dir() / CONFIG_SUBPATH
    data = read_yaml(path)
    if not isinstance(data, Mapping) or not data:
        raise EvalInputError("expected a mapping of annotator name -> config", path)
    if annotator not in data:
        if len(data) != 1:
            raise EvalInputError(f"no annotator '{annotator}' (found {sorted(data)})", path)
        annotator = next(iter(data))
    config = data[annotator]
    if not isinstance(config, Mapping):
        raise EvalInputError("annotator entry is not a mapping", path, field=annotator)
    field(config, "completions_kwargs", Mapping, path, label=f"{annotator}.completions_kwargs")
    return dict(config)


def judge_request_kwargs(config: Mapping) -> dict:
    """Sampling kwargs for the judge call, taken from ``completions_kwargs`` of the config.

    For the weighted config: ``{max_tokens: 1, temperature: 1, logprobs: True, top_logprobs: 5}``.
    Non-sampling keys (model_name, requires_chatml, client settings) are left out.
    """
    kwargs = config["completions_kwargs"]
    return {k: kwargs[k] for k in REQUEST_KWARG_KEYS if k in kwargs}


def template_placeholders(template: str) -> list[str]:
    """Placeholder names in order of first appearance (whitespace-free ``{name}`` only)."""
    return list(dict.fromkeys(_PLACEHOLDER.findall(template)))


def fill_template(template: str, values: Mapping[str, Any]) -> str:
    """Fill each placeholder by replacing its first occurrence, in template order (not ``str.format``).

    Braces inside the inserted texts are therefore left alone, as upstream does.
    """
    text = template
    for name in template_placeholders(template):
        if name not in values:
            raise KeyError(f"no value for template placeholder {{{name}}}")
        text = text.replace("{" + name + "}", str(values[name]), 1)
    return text


def chatml_to_messages(prompt: str, start: str = "<|im_start|>", end: str = "<|im_end|>") -> list[dict]:
    """Split ``<|im_start|>role\\ncontent<|im_end|>`` blocks into chat messages (contents stripped).

    A role like ``system name=example_user`` becomes ``{"role": "system", "name": "example_user"}``.
    """
    prompt = prompt.strip()
    if not (prompt.startswith(start) and prompt.endswith(end)):
        raise EvalInputError("prompt is not ChatML-marked (must start with <|im_start|> and end with <|im_end|>)")
    messages = []
    for block in prompt.split(start)[1:]:
        header, _, rest = block.partition("\n")
        role = header.strip()
        extra = {}
        if role.startswith("system") and role != "system":
            extra = dict(kv.split("=", 1) for kv in role[len("system"):].split(" ") if kv)
            role = "system"
        messages.append({"content": rest.split(end, 1)[0].strip(), "role": role, **extra})
    return messages


# ----------------------------------------------------------------------------- request building

def is_switched(instruction: str, seed: int = 0) -> bool:
    """Upstream's per-instruction coin: ``Random("is_switched_outputs" + instruction + str(seed))``."""
    return random.Random(SWITCH_SEED_PREFIX + instruction + str(seed)).choices([False, True], k=1)[0]


@dataclass
class JudgeItem:
    """One instruction to annotate. ``messages`` is None when both outputs are identical (no call)."""

    index: int
    instruction: str
    output_1: str  # baseline
    output_2: str  # evaluated model
    generator_1: str
    generator_2: str
    is_switched: bool
    messages: list[dict] | None
    dataset: str | None = None
    extra: dict = dc_field(default_factory=dict)

    @property
    def needs_judge(self) -> bool:
        return self.messages is not None


def build_judge_items(reference: Sequence[Mapping], model_outputs: Sequence[Mapping], template: str,
                      seed: int = 0) -> list[JudgeItem]:
    """Pair model outputs with the reference by instruction, in reference order, and build the prompts.

    Unlike upstream's silent inner merge, a missing or extra instruction raises ``EvalInputError``.
    If the coin says "switch", the model output is shown as ``m`` (output_1 slot) and the baseline as ``M``.
    """
    by_instruction = {row["instruction"]: row for row in model_outputs}
    missing = [r["instruction"] for r in reference if r["instruction"] not in by_instruction]
    extra = set(by_instruction) - {r["instruction"] for r in reference}
    if missing or extra:
        raise EvalInputError(f"model outputs do not match the reference instructions: {len(missing)} missing, "
                         f"{len(extra)} extra (first missing: {missing[:1]!r})")
    items = []
    for i, ref in enumerate(reference):
        mine = by_instruction[ref["instruction"]]
        out_1, out_2 = str(ref["output"]), str(mine["output"])
        switched = is_switched(ref["instruction"], seed)
        messages = None
        if out_1 != out_2:
            shown_1, shown_2 = (out_2, out_1) if switched else (out_1, out_2)
            prompt = fill_template(template, {"instruction": ref["instruction"], "output_1": shown_1,
                                              "output_2": shown_2})
            messages = chatml_to_messages(prompt)
        items.append(JudgeItem(index=i, instruction=ref["instruction"], output_1=out_1, output_2=out_2,
                               generator_1=str(ref.get("generator", "baseline")),
                               generator_2=str(mine.get("generator", "model")), is_switched=switched,
                               messages=messages, dataset=ref.get("dataset")))
    return items


# ----------------------------------------------------------------------------- parsing

def top_logprobs_of(response: Any) -> list[dict] | None:
    """``choices[0].logprobs.content[0].top_logprobs`` of a reply (or of a bare choice, or of either
    serialised as a JSON string, as older annotation files store it); None if absent.
    """
    if isinstance(response, str):
        try:
            response = json.loads(response)
        except json.JSONDecodeError:
            return None
    choice = first_choice(response)
    logprobs = as_plain(choice.get("logprobs"))
    if not isinstance(logprobs, Mapping):
        return None
    content = logprobs.get("content") or []
    if not content:
        return None
    first = as_plain(content[0])
    top = first.get("top_logprobs") if isinstance(first, Mapping) else None
    return [as_plain(t) for t in top] if isinstance(top, list) else None


def preference_from_top_logprobs(top_logprobs: Sequence[Mapping] | None) -> float:
    """Upstream's ``logprob_parser`` (not binarised): ``2 - P(m) / (P(m) + P(M))``.

    Only entries whose token is exactly ``m`` or ``M`` count; a missing one has probability 0.
    NaN if neither appears. In the shown order: 1 = output ``m`` better, 2 = output ``M`` better.
    """
    if not top_logprobs:
        return math.nan
    found = {t.get("token"): float(t.get("logprob")) for t in top_logprobs
             if t.get("token") in DENOMINATOR_TOKENS and t.get("logprob") is not None}
    if not found:
        return math.nan
    numerator = found.get(NUMERATOR_TOKEN, -math.inf)
    denominator = np.logaddexp.reduce([found.get(t, -math.inf) for t in DENOMINATOR_TOKENS])
    return 2.0 - math.exp(numerator - denominator)


def parse_judge_response(response: Any) -> float:
    """Preference in the shown order from a judge reply; NaN when the reply has no usable logprobs."""
    return preference_from_top_logprobs(top_logprobs_of(response))


def unswitch(preference: float, switched: bool) -> float:
    """Map a preference back to baseline/model order: ``x -> 3 - x`` for switched rows."""
    return 3.0 - preference if switched else preference


def annotation_row(item: JudgeItem, response: Any = None, annotator: str = ANNOTATOR, **extra) -> dict:
    """An ``annotations.json`` row; ``response`` is the judge reply (ignored for identical outputs).

    ``raw_completion`` stores the first choice of the reply (logprobs included), as upstream does,
    so :func:`reparse_annotations` can redo the parsing without judge calls.
    """
    if item.needs_judge:
        preference = unswitch(parse_judge_response(response), item.is_switched)
        raw = first_choice(response) if response is not None else None
    else:
        preference, raw = IDENTICAL_PREFERENCE, None
    row = {"dataset": item.dataset, "instruction": item.instruction, "output_1": item.output_1,
           "generator_1": item.generator_1, "output_2": item.output_2, "generator_2": item.generator_2,
           "annotator": annotator, "preference": preference, "raw_completion": raw,
           SWITCH_SEED_PREFIX: item.is_switched}
    row.update(item.extra)
    row.update(extra)
    return row


# ----------------------------------------------------------------------------- annotations files

def read_annotations(path: PathLike) -> list[dict]:
    """Read upstream ``annotations.json`` rows; ``preference`` null -> NaN. Order is kept (LC needs it)."""
    rows = []
    for label, record in read_json_rows(path, ("instruction", "output_1", "output_2", "generator_1", "generator_2"),
                                        "annotation rows"):
        if "preference" not in record:
            raise EvalInputError("missing field", path, field=f"{label}.preference")
        pref = record["preference"]
        if pref is None:
            pref = math.nan
        elif isinstance(pref, bool) or not isinstance(pref, (int, float)):
            raise EvalInputError(f"expected a number or null, got {pref!r}", path, field=f"{label}.preference")
        rows.append({**record, "preference": float(pref)})
    return rows


def write_annotations(path: PathLike, rows: Sequence[Mapping]) -> None:
    """Write ``annotations.json`` (JSON list; NaN preferences as null, as pandas writes them)."""
    def clean(v):
        return None if isinstance(v, float) and math.isnan(v) else v
    write_json(path, [{k: clean(v) for k, v in row.items()} for row in rows])


def reparse_annotations(rows: Sequence[Mapping], seed: int = 0) -> list[dict]:
    """Recompute ``preference`` from each row's ``raw_completion`` (upstream's ``is_reapply_parsing``).

    Rows with identical outputs keep 1.5; the switch is recomputed from instruction and seed.
    A judged row without ``raw_completion`` raises ``EvalInputError``.
    """
    out = []
    for i, row in enumerate(rows):
        row = dict(row)
        if row["output_1"] == row["output_2"]:
            row["preference"] = IDENTICAL_PREFERENCE
        elif not row.get("raw_completion"):
            raise EvalInputError(f"row {i} has no raw_completion to reparse")
        else:
            row["preference"] = unswitch(parse_judge_response(row.get("raw_completion")),
                                         is_switched(row["instruction"], seed))
        out.append(row)
    return out


# ----------------------------------------------------------------------------- metrics

@contextlib.contextmanager
def _quiet_alpaca_eval() -> Iterator[None]:
    """Silence alpaca_eval's call-time chatter (INFO logs, warnings); the root logger level is restored."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(max(level, logging.WARNING))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def _import_alpaca(name: str):
    """Import an alpaca_eval module without its side effects on us: its import sets the root logger to
    INFO (undone here) and warns about pkg_resources (ignored)."""
    import importlib

    root = logging.getLogger()
    level = root.level
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(name)
    finally:
        root.setLevel(level)


def _preferences(rows: Sequence[Mapping]) -> np.ndarray:
    return np.array([float("nan") if r.get("preference") is None else float(r["preference"]) for r in rows])


def win_rate_metrics(rows: Sequence[Mapping]) -> dict:
    """Raw win rate via ``alpaca_eval.metrics.get_winrate``, plus dropped-row count and average length.

    With y = preference - 1 over rows with preference in [1, 2]: ``win_rate = 100 mean(y)``,
    ``standard_error = 100 sd(y)/sqrt(n)`` (ddof 1); ``n_wins = #(y > .5)``, ``n_wins_base = #(y < .5)``,
    ``n_draws = #(preference == 1.5)``; ``n_dropped`` = rows without a usable preference;
    ``avg_length`` = int(mean characters of the model's outputs), truncated as upstream.
    """
    if not rows:
        raise EvalInputError("no annotation rows")
    get_winrate = _import_alpaca("alpaca_eval.metrics").get_winrate
    with _quiet_alpaca_eval():
        raw = get_winrate([{"preference": p} for p in _preferences(rows)])
    out = {k: (float(v) if isinstance(v, (float, np.floating)) else int(v)) for k, v in raw.items()}
    out["n_dropped"] = len(rows) - out["n_total"]
    out["avg_length"] = int(np.mean([len(r["output_2"]) for r in rows]))
    return out


def _generators(rows: Sequence[Mapping]) -> tuple[str, str]:
    models = {r["generator_2"] for r in rows}
    if len(models) != 1:
        raise EvalInputError(f"annotations mix several evaluated models {sorted(models)}; LC needs one")
    return rows[0]["generator_1"], next(iter(models))


def _read_difficulty(path: PathLike, n_rows: int) -> np.ndarray:
    """``instruction_difficulty.csv`` (index column + one value column), looked up by row position."""
    import pandas as pd

    try:
        values = pd.read_csv(path, index_col=0).squeeze("columns")
    except (OSError, ValueError) as e:
        raise EvalInputError(f"cannot read instruction difficulty CSV ({e})", path) from None
    values = np.asarray(values, dtype=float).reshape(-1)
    if len(values) < n_rows:
        raise EvalInputError(f"{len(values)} difficulties for {n_rows} annotation rows", path)
    return values[:n_rows]


@contextlib.contextmanager
def _offline_hub(df_gamed: PathLike, instruction_difficulty: PathLike | None) -> Iterator[Any]:
    """alpaca_eval's GLM module with its hub download replaced by local files, HF_HUB_OFFLINE=1 set."""
    local = {"df_gamed.csv": Path(df_gamed)}
    if instruction_difficulty is not None:
        local["instruction_difficulty.csv"] = Path(instruction_difficulty)

    def local_download(*args, filename: str = "", **kwargs) -> str:
        if filename not in local:
            raise EvalInputError(f"alpaca_eval asked for hub file '{filename}'; no local copy was given")
        return str(local[filename])

    previous_env = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"  # set before huggingface_hub may be imported for the first time
    try:
        import huggingface_hub.constants as hub_constants

        glm_winrate = _import_alpaca("alpaca_eval.metrics.glm_winrate")
        previous_download = glm_winrate.hf_hub_download
        previous_flag = getattr(hub_constants, "HF_HUB_OFFLINE", None)
        glm_winrate.hf_hub_download = local_download
        hub_constants.HF_HUB_OFFLINE = True  # in case huggingface_hub read the environment earlier
        try:
            with _quiet_alpaca_eval():
                yield glm_winrate
        finally:
            glm_winrate.hf_hub_download = previous_download
            hub_constants.HF_HUB_OFFLINE = previous_flag
    finally:
        if previous_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = previous_env


def _upstream_lc(rows: Sequence[Mapping], df_gamed: PathLike) -> dict:
    """LC via alpaca_eval's own ``get_length_controlled_winrate`` with a local ``df_gamed.csv``."""
    import pandas as pd

    path = Path(df_gamed)
    if not path.is_file():
        raise EvalInputError("df_gamed.csv not found", path)
    try:
        n_instructions = pd.read_csv(path, usecols=["index"])["index"].nunique()
    except ValueError as e:
        raise EvalInputError(f"not a df_gamed.csv ({e})", path) from None
    if n_instructions != len(rows):
        raise EvalInputError(f"df_gamed.csv covers {n_instructions} instructions but there are {len(rows)} "
                             "annotation rows; LC needs the full set in reference order", path)
    frame = pd.DataFrame({"output_1": [r["output_1"] for r in rows], "output_2": [r["output_2"] for r in rows],
                          "generator_1": [r["generator_1"] for r in rows],
                          "generator_2": [r["generator_2"] for r in rows],
                          "annotator": [r.get("annotator", ANNOTATOR) for r in rows],
                          "preference": _preferences(rows)})
    out = {}
    with _offline_hub(path, None) as glm:
        for glm_name, key in (("length_controlled_v1", ""), ("length_controlled_noreg", "_noreg")):
            res = glm.get_length_controlled_winrate(frame.copy(), glm_name=glm_name, save_weights_dir=None,
                                                    is_add_glm_preference_inplace=False)
            out[f"length_controlled_winrate{key}"] = float(res["length_controlled_winrate"])
            out[f"lc_standard_error{key}"] = float(res["lc_standard_error"])
    out["lc_variant"] = LC_VARIANT_UPSTREAM
    out["lc_note"] = ("df_gamed.csv rows were judged by GPT-4-turbo; under another judge the regulariser "
                      "mixes two judges, so the noreg value is reported alongside")
    return out


def _sklearn_version() -> tuple[int, int]:
    import sklearn

    major, minor = (int(x) for x in re.findall(r"\d+", sklearn.__version__)[:2])
    return major, minor


def _l1_cv_model(cv, scoring):
    """LogisticRegressionCV, L1 + liblinear, no intercept, random_state 123 (spelled per sklearn version)."""
    from sklearn.linear_model import LogisticRegressionCV

    kwargs = dict(cv=cv, scoring=scoring, solver="liblinear", fit_intercept=False, random_state=123, dual=False)
    if _sklearn_version() >= (1, 8):
        kwargs.update(l1_ratios=(1.0,), use_legacy_attributes=False)
    else:
        kwargs.update(penalty="l1")
    return LogisticRegressionCV(**kwargs)


def _soft_log_loss(y_dup, proba, true_prob, true_sample_weight=None) -> float:
    """Weighted log loss against soft targets (the duplicated rows carry p and 1-p), lower is better."""
    target = np.where(np.asarray(y_dup) == 1, true_prob, 1 - np.asarray(true_prob))
    proba = np.clip(proba, 1e-15, 1 - 1e-15)
    losses = target * np.log(proba) + (1 - target) * np.log(1 - proba)
    if true_sample_weight is not None:
        losses = losses * true_sample_weight
    return -float(np.mean(losses))


def fit_length_glm(len_baseline: Sequence[int], len_model: Sequence[int], preference: Sequence[float],
                   difficulty: Sequence[float] | None = None, n_splits: int = 5) -> tuple[np.ndarray, dict]:
    """Our own GLM (alpaca_eval's ``length_controlled_minimal``/``noreg`` without gamed rows).

    z = (b - m)/sd(b - m) (ddof 1, over all rows); P(model wins) = sigma(t_len tanh(z) [+ t_d d] + t_m).
    Fitted on soft labels y = preference - 1 (each row twice: label 1 weight y, label 0 weight 1 - y)
    with L1 LogisticRegressionCV (liblinear, no intercept, random_state 123, 5-fold GroupKFold keeping a
    row's copies together, soft log-loss scoring). Returns per-row predictions at z = 0 and the weights.
    """
    import sklearn
    from sklearn.metrics import make_scorer
    from sklearn.model_selection import GroupKFold

    delta = np.asarray(len_baseline, dtype=float) - np.asarray(len_model, dtype=float)
    sd = np.std(delta, ddof=1) if len(delta) > 1 else 0.0
    z = delta / sd if sd > 0 and np.isfinite(sd) else np.zeros_like(delta)
    names = ["np.tanh(std_delta_len)"]
    columns = [np.tanh(z)]
    test_columns = [np.zeros_like(z)]
    if difficulty is not None:
        names.append("instruction_difficulty")
        columns.append(np.asarray(difficulty, dtype=float))
        test_columns.append(np.asarray(difficulty, dtype=float))
    names.append("not_gamed_baseline.astype(float)")
    columns.append(np.ones_like(z))
    test_columns.append(np.ones_like(z))
    X, X_test = np.column_stack(columns), np.column_stack(test_columns)

    y = np.asarray(preference, dtype=float)
    y = np.where(y == 0.0, 1.5, y) - 1.0
    keep = ~np.isnan(y)
    X_train, y_train = X[keep], y[keep]
    n = len(y_train)
    X_dup = np.vstack([X_train, X_train])
    label = np.concatenate([np.ones(n), np.zeros(n)])
    true_prob = np.concatenate([y_train, 1.0 - y_train])
    groups = np.concatenate([np.arange(n), np.arange(n)])

    scorer = make_scorer(_soft_log_loss, response_method="predict_proba", greater_is_better=False)
    with sklearn.config_context(enable_metadata_routing=True), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # liblinear convergence chatter on tiny synthetic sets
        scorer = scorer.set_score_request(true_prob=True, true_sample_weight=True)
        model = _l1_cv_model(GroupKFold(n_splits=n_splits), scorer)
        model.set_fit_request(sample_weight=True)
        model.fit(X_dup, label, sample_weight=true_prob, groups=groups, true_prob=true_prob,
                  true_sample_weight=None)
    predicted = model.predict_proba(X_test)[:, 1]
    return predicted, dict(zip(names, (float(c) for c in model.coef_.reshape(-1))))


def length_controlled_metrics(rows: Sequence[Mapping], df_gamed: PathLike | None = None,
                              instruction_difficulty: PathLike | None = None) -> dict:
    """Length-controlled win rate; the rows must be in the reference (canonical) order.

    With ``df_gamed``: alpaca_eval's ``length_controlled_v1`` (and ``noreg``) through its own code, the hub
    download replaced by the local file. Without it: :func:`fit_length_glm`, labelled in ``lc_variant``
    (no gamed rows; difficulty term only when ``instruction_difficulty`` is given).
    ``length_controlled_winrate = 100 mean(p_i)``, ``lc_standard_error = 100 sem(p_i)``.
    """
    baseline, model = _generators(rows)
    if df_gamed is not None:
        return _upstream_lc(rows, df_gamed)
    variant = LC_VARIANT_NOREG if instruction_difficulty is not None else LC_VARIANT_MINIMAL
    if baseline == model:
        p, weights = np.full(len(rows), 0.5), {}
    else:
        difficulty = None if instruction_difficulty is None else _read_difficulty(instruction_difficulty, len(rows))
        p, weights = fit_length_glm([len(r["output_1"]) for r in rows], [len(r["output_2"]) for r in rows],
                                    _preferences(rows), difficulty)
    sem = float(np.std(p, ddof=1) / math.sqrt(len(p))) if len(p) > 1 else math.nan
    return {"length_controlled_winrate": float(100 * np.mean(p)), "lc_standard_error": 100 * sem,
            "lc_variant": variant, "lc_weights": weights}


def compute_metrics(rows: Sequence[Mapping], df_gamed: PathLike | None = None,
                    instruction_difficulty: PathLike | None = None, length_controlled: bool = True) -> dict:
    """Win-rate metrics plus (by default) the length-controlled win rate."""
    metrics = win_rate_metrics(rows)
    if length_controlled:
        metrics.update(length_controlled_metrics(rows, df_gamed, instruction_difficulty))
    return metrics


def format_leaderboard(metrics: Mapping, name: str) -> str:
    """Upstream-like printout: LC, WR, SE, n_total, avg_length (+ dropped rows and the LC variant)."""
    cols = ["length_controlled_winrate", "win_rate", "standard_error", "n_total", "avg_length", "n_dropped"]
    cols = [c for c in cols if c in metrics]
    width = max(len(name), 5)
    header = f"{'':<{width}} " + " ".join(f"{c:>25}" for c in cols)
    values = [f"{metrics[c]:>25.2f}" if isinstance(metrics[c], float) else f"{metrics[c]:>25}" for c in cols]
    lines = [header, f"{name:<{width}} " + " ".join(values)]
    if "lc_variant" in metrics:
        lines.append(f"LC variant: {metrics['lc_variant']}")
    if "length_controlled_winrate_noreg" in metrics:
        lines.append(f"LC noreg: {metrics['length_controlled_winrate_noreg']:.2f} "
                     f"(SE {metrics['lc_standard_error_noreg']:.2f})")
    return "\n".join(lines)
