"""Judge agreement (the paper's Table 4): how often an evaluator's pairwise verdicts agree with a reference.

Every judge here answers AlpacaEval's request (eval.alpaca_eval2's template and weighted logprob parsing, order
randomised by upstream's coin): a pair ``(instruction, output_1, output_2)`` gets a preference in [1, 2]
(1 = output_1 better, 2 = output_2 better, NaN = unparseable, 1.5 for identical outputs without a call).

Agreements are fractions in [0, 1] (shown ×100, as upstream's "Human agreement" column, by
:func:`format_rows`); win rates are in percent, as AlpacaEval's.

**Tiny scale** (:func:`tiny_agreement`; :func:`tiny_judge_agreement` picks the pairs for a pipeline): the
reference is the gold reward. On AlpacaEval-style pairs, agreement = share of pairs where the judge's preferred output (preference > 1.5 or < 1.5) is the one with the
higher gold reward; a judge preference of exactly 1.5 counts ½; pairs of equal gold are left out (counted as
``n_gold_ties``); NaN verdicts are dropped (``n_dropped``). Several evaluators, as the paper's table has several:
oracle judges with different settings (:data:`TINY_EVALUATORS`: unbiased, the default biased one, a noisier
one) and ``raters``, the gold reward plus the preference data's rater noise (the tiny analogue of the humans
row, no judge call). With ``models`` (each model's outputs paired with the baseline's), also the Spearman and
Pearson correlation across models between the evaluator's win rate and the gold win rate (3 models or more).

**Real scale** (:func:`crossannotation_agreement`): alpaca_eval's human cross-annotations
(``alpaca_farm_human_crossannotations``: rows ``{instruction, output_1, output_2, preference, ...}``, several
human rows per pair). Our rule, following ``alpaca_eval.analyze.Analyzer`` with its default ``absolute``
scoring rule (``get_metrics_evaluator``: one judge annotation vs all humans):

* pairs with at least ``n_annotators`` (4) human rows are kept, their first 4 in ``annotator_index`` (else file)
  order; a human preference of 0 (upstream's old draw code) counts as 1.5;
* the target is the mode of the 4 human preferences. Upstream breaks a tie between modes by a seeded random
  draw; we average the score over the tied modes (the same expectation, no randomness);
* score of a pair = ``1 - |p_judge - target|`` with the judge's continuous preference (``binary=True`` rounds it
  first, a 1.5 staying 1.5); agreement = mean score; NaN verdicts dropped and counted;
* the ``humans`` row: each human vs the mode of the other 3 (leave one out), averaged, as upstream estimates
  human agreement;
* correlations across generators only when the rows carry a ``generator`` field (the hub file does not;
  upstream rebuilds it from the gold annotations).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping, Sequence

import numpy as np

from eval import alpaca_eval2 as ae
from eval.common import EvalInputError, PathLike, field, read_json_rows, write_json


@dataclass
class Pair:
    instruction: str
    output_1: str
    output_2: str
    generator_1: str = "output_1"
    generator_2: str = "output_2"


# ----------------------------------------------------------------------------- judging pairs

def pair_items(pairs: Sequence[Pair], template: str, seed: int = 0) -> list[ae.JudgeItem]:
    """AlpacaEval judge items for arbitrary pairs (instructions may repeat): upstream's switch coin, prompt
    filling and ChatML split; identical outputs need no call."""
    items = []
    for i, p in enumerate(pairs):
        switched = ae.is_switched(p.instruction, seed)
        messages = None
        if p.output_1 != p.output_2:
            shown_1, shown_2 = (p.output_2, p.output_1) if switched else (p.output_1, p.output_2)
            messages = ae.chatml_to_messages(ae.fill_template(template, {"instruction": p.instruction,
                                                                         "output_1": shown_1, "output_2": shown_2}))
        items.append(ae.JudgeItem(index=i, instruction=p.instruction, output_1=p.output_1, output_2=p.output_2,
                                  generator_1=p.generator_1, generator_2=p.generator_2, is_switched=switched,
                                  messages=messages))
    return items


def judge_pairs(judge, pairs: Sequence[Pair], template: str | None = None, config: Mapping | None = None,
                template_path: PathLike | None = None, config_path: PathLike | None = None,
                seed: int = 0) -> np.ndarray:
    """Preferences in [1, 2] (output_1 / output_2 order) from ``judge`` (a JudgeClient) for ``pairs``."""
    template = template or ae.load_judge_template(template_path)
    kwargs = ae.judge_request_kwargs(config or ae.load_judge_config(config_path))
    items = pair_items(pairs, template, seed)
    todo = [it for it in items if it.needs_judge]
    replies = judge.complete_many([{"messages": it.messages, **kwargs} for it in todo])
    prefs = np.full(len(items), ae.IDENTICAL_PREFERENCE)
    for it, reply in zip(todo, replies):
        prefs[it.index] = ae.unswitch(ae.parse_judge_response(reply), it.is_switched)
        if math.isnan(prefs[it.index]):
            judge.record_unparseable({"messages": it.messages, **kwargs}, reply, benchmark="agreement",
                                     reason="neither 'm' nor 'M' among the first token's top logprobs")
    return prefs


# ----------------------------------------------------------------------------- tiny scale: gold reward

def gold_preferences(world, pairs: Sequence[Pair]) -> np.ndarray:
    """1 where output_1 has the higher gold reward, 2 where output_2 has, 1.5 on equal gold."""
    out = []
    for p in pairs:
        g1, g2 = world.gold_reward_text(p.instruction, p.output_1), world.gold_reward_text(p.instruction, p.output_2)
        out.append(1.0 if g1 > g2 else 2.0 if g2 > g1 else 1.5)
    return np.array(out)


def rater_preferences(world, pairs: Sequence[Pair], noise: float = 1.0, seed: int = 0) -> np.ndarray:
    """Noisy raters: gold + N(0, noise) per output (seeded by the pair's texts), the higher one preferred."""
    out = []
    for p in pairs:
        rng = random.Random(f"rater|{seed}|{p.instruction}|{p.output_1}|{p.output_2}")
        g1 = world.gold_reward_text(p.instruction, p.output_1) + rng.gauss(0.0, noise)
        g2 = world.gold_reward_text(p.instruction, p.output_2) + rng.gauss(0.0, noise)
        out.append(1.0 if g1 > g2 else 2.0 if g2 > g1 else 1.5)
    return np.array(out)


def pairwise_agreement(judge_prefs: Sequence[float], target_prefs: Sequence[float]) -> dict:
    """Share of pairs (a fraction) where the judge prefers the target's better output; a judge 1.5 counts ½.

    Target ties (1.5) are left out (``n_target_ties``), NaN judge verdicts dropped (``n_dropped``).
    """
    j, t = np.asarray(judge_prefs, dtype=float), np.asarray(target_prefs, dtype=float)
    decided = t != 1.5
    valid = decided & ~np.isnan(j)
    same = np.where(j[valid] == 1.5, 0.5, ((j[valid] > 1.5) == (t[valid] > 1.5)).astype(float))
    return {"agreement": float(same.mean()) if len(same) else math.nan, "n_pairs": int(valid.sum()),
            "n_target_ties": int((~decided).sum()), "n_dropped": int((decided & np.isnan(j)).sum())}


def win_rate(prefs: Sequence[float]) -> float:
    """100 × mean(preference − 1) over parsed rows (output_2's win rate, AlpacaEval's WR)."""
    p = np.asarray(prefs, dtype=float)
    p = p[~np.isnan(p)]
    return float(100 * np.mean(p - 1)) if len(p) else math.nan


def correlations(x: Sequence[float], y: Sequence[float]) -> dict:
    """Spearman and Pearson of two per-model score lists (None with fewer than 3 models or no variation)."""
    from scipy.stats import pearsonr, spearmanr

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"spearman": None, "pearson": None, "n_models": len(x)}
    return {"spearman": float(spearmanr(x, y).statistic), "pearson": float(pearsonr(x, y).statistic),
            "n_models": len(x)}


def pairs_between(rows_1: Sequence[Mapping], rows_2: Sequence[Mapping], name_1: str = "output_1",
                  name_2: str = "output_2") -> list[Pair]:
    """Pairs over the instructions two model_outputs-style row lists share (in ``rows_1``'s order)."""
    by_instruction = {r["instruction"]: r for r in rows_2}
    return [Pair(r["instruction"], r["output"], by_instruction[r["instruction"]]["output"], name_1, name_2)
            for r in rows_1 if r["instruction"] in by_instruction]


def _default_tiny_evaluators() -> dict:
    from judge.oracle import OracleConfig

    return {"oracle-unbiased": OracleConfig(length_bias=0.0, markdown_bias=0.0, position_bias=0.0),
            "oracle-default": OracleConfig(),
            "oracle-noisy": OracleConfig(noise=3.0)}


TINY_EVALUATORS: Callable[[], dict] = _default_tiny_evaluators
"""Oracle settings compared at tiny scale: no length/markdown/position bias (default noise), the default
(biased) oracle, and the default with twice the noise."""


def _config_tag(config) -> str:
    return hashlib.sha256(json.dumps(dataclasses.asdict(config), sort_keys=True).encode()).hexdigest()[:8]


def tiny_agreement(world, pairs: Sequence[Pair], *, evaluators: Mapping | None = None,
                   models: Mapping[str, Sequence[Pair]] | None = None, cache_dir: PathLike | None = None,
                   rater_noise: float | None = 1.0, judge_overrides: Mapping | None = None) -> list[dict]:
    """Table 4 at tiny scale: one row per evaluator (see the module docstring).

    ``pairs``: the pairs to judge; ``models``: optional ``{model: pairs (baseline, model)}`` for the across-model
    correlations; ``evaluators``: ``{name: OracleConfig}`` (default :data:`TINY_EVALUATORS`), each served by
    its own ``OracleServer`` over HTTP with its own judge cache file under ``cache_dir``; ``rater_noise``: adds
    the ``raters`` row (None: no such row).
    """
    from judge.client import JudgeClient, JudgeConfig
    from judge.oracle import OracleServer

    evaluators = dict(evaluators if evaluators is not None else TINY_EVALUATORS())
    gold = gold_preferences(world, pairs)
    models = dict(models or {})
    gold_wr = {m: win_rate(gold_preferences(world, ps)) for m, ps in models.items()}
    rows = []
    for name, cfg in evaluators.items():
        cache = None if cache_dir is None else str(Path(cache_dir) / f"{name}-{_config_tag(cfg)}.jsonl")
        with OracleServer(world, cfg) as srv, JudgeClient(JudgeConfig(
                base_url=srv.base_url, model=srv.model, cache_path=cache, **dict(judge_overrides or {}))) as judge:
            every = list(pairs) + [p for ps in models.values() for p in ps]   # one batch: repeats make one call
            all_prefs = judge_pairs(judge, every)
            stats = judge.stats.as_dict()
        prefs, start, judge_wr = all_prefs[:len(pairs)], len(pairs), {}
        for m, ps in models.items():
            judge_wr[m] = win_rate(all_prefs[start:start + len(ps)])
            start += len(ps)
        row = {"evaluator": name, "kind": "oracle judge", "config": dataclasses.asdict(cfg),
               **pairwise_agreement(prefs, gold), "judge_calls": stats["calls"],
               "judge_cache_hits": stats["cache_hits"]}
        if models:
            row.update(correlations([judge_wr[m] for m in models], [gold_wr[m] for m in models]))
            row["win_rates"] = {m: {"evaluator": judge_wr[m], "gold": gold_wr[m]} for m in models}
        rows.append(row)
    if rater_noise is not None:
        row = {"evaluator": "raters", "kind": f"gold reward + N(0, {rater_noise}) per output (humans analogue)",
               **pairwise_agreement(rater_preferences(world, pairs, rater_noise), gold)}
        if models:
            rater_wr = {m: win_rate(rater_preferences(world, ps, rater_noise)) for m, ps in models.items()}
            row.update(correlations([rater_wr[m] for m in models], [gold_wr[m] for m in models]))
            row["win_rates"] = {m: {"evaluator": rater_wr[m], "gold": gold_wr[m]} for m in models}
        rows.append(row)
    return rows


def tiny_judge_agreement(pipe, out_dir: PathLike, *, models: Mapping[str, PathLike] | None = None,
                         evaluators: Mapping | None = None, limit: int | None = None,
                         truncations: Sequence[int] = (8, 12)) -> dict:
    """Table 4 for a tiny pipeline: :func:`tiny_agreement` on pairs it builds itself. Written to
    ``out_dir/agreement.json``; answers and judge caches are kept under ``out_dir`` (a rerun makes no call).

    Answer sets, on the tiny AlpacaEval instructions (the first ``limit``; default the scale's
    ``bench.alpaca_eval2``): the baseline's (the benchmark reference), each model's in ``models``
    (``{name: model folder}``; default the initial policies), generated as eval.answers does for AlpacaEval,
    and the baseline's answers cut to ``truncations`` words (answer sets of graded quality, so the
    across-model correlations have a spread of gold win rates). Pairs: every two answer sets on every
    instruction. ``models`` for the correlations: each answer set against the baseline.

    Returns ``{"evaluators": {name: {agreement (fraction), n (pairs), n_gold_ties, n_dropped, [spearman,
    pearson,] n_models, win_rates}}, "rows", "models", "n_instructions", "note"}``; spearman/pearson are left
    out where they are undefined (fewer than 3 models, or no spread in a win rate).
    """
    from eval.answers import LazyEngine, alpaca_answers, max_new_tokens_for
    from eval.run import model_name_from_path, safe_name, tiny_benchmark_data
    from reproduce.scales import TINY_POLICIES

    out_dir = Path(out_dir)
    world = pipe.world
    reference = ae.load_outputs(tiny_benchmark_data(pipe).alpaca_reference)
    limit = limit or (pipe.cfg.get("bench") or {}).get("alpaca_eval2")
    reference = reference[:limit] if limit else reference
    baseline = reference[0].get("generator", "baseline") if reference else "baseline"
    if models is None:
        models = {p: pipe.initial_policy(p) for p in TINY_POLICIES}
    outputs: dict[str, list] = {}
    for name, model_dir in models.items():
        folder = out_dir / "answers" / safe_name(model_name_from_path(model_dir))  # stage name: fingerprinted
        with LazyEngine(model_dir, tokenizer=pipe.tokenizer) as engine:
            outputs[name] = alpaca_answers(engine, reference, folder / "model_outputs.json", name,
                                           max_new_tokens=max_new_tokens_for("alpaca_eval2", "tiny", pipe.cfg))
    for n in truncations:
        outputs[f"{baseline}-first-{n}-words"] = [
            {**r, "output": world.render(world.split_text(r["output"])[:n])} for r in reference]
    sets = {baseline: list(reference), **outputs}
    names = list(sets)
    pairs = [p for i, a in enumerate(names) for b in names[i + 1:] for p in pairs_between(sets[a], sets[b], a, b)]
    vs_baseline = {m: pairs_between(reference, rows, baseline, m) for m, rows in outputs.items()}
    rows = tiny_agreement(world, pairs, evaluators=evaluators, models=vs_baseline,
                          cache_dir=out_dir / "judge-cache", rater_noise=pipe.cfg.get("data", {}).get("rater_noise", 1.0))
    result = {"evaluators": {}, "rows": rows, "models": list(outputs), "n_instructions": len(reference),
              "note": (f"pairs: every two of {len(sets)} answer sets ({', '.join(names)}) on {len(reference)} "
                       f"AlpacaEval instructions; gold ties left out; correlations over the {len(outputs)} answer "
                       f"sets' win rates against {baseline}; 'raters' = gold reward + rater noise (humans analogue)")}
    for r in rows:
        entry = {k: v for k, v in r.items() if k not in ("evaluator", "spearman", "pearson")}
        entry["n"] = r["n_pairs"]
        entry.update({k: r[k] for k in ("spearman", "pearson") if r.get(k) is not None})
        result["evaluators"][r["evaluator"]] = entry
    write_json(out_dir / "agreement.json", result)
    return result


# ----------------------------------------------------------------------------- real scale: human cross-annotations

def load_crossannotations(path: PathLike) -> list[dict]:
    """alpaca_eval's ``alpaca_farm_human_crossannotations`` JSON: a list of rows with ``instruction``,
    ``output_1``, ``output_2`` and a numeric ``preference`` (1 or 2; 0 or 1.5 = draw), optionally
    ``annotator_index``, ``generator``, ``dataset``, ``datasplit``, ``input``."""
    rows = []
    for label, rec in read_json_rows(path, ("instruction", "output_1", "output_2"), "annotation rows"):
        pref = field(rec, "preference", (int, float), path, label=f"{label}.preference")
        pref = 1.5 if pref == 0 else float(pref)
        if not (1.0 <= pref <= 2.0):
            raise EvalInputError(f"preference must lie in [1, 2] (or 0 for a draw), got {rec['preference']!r}",
                                 path, field=f"{label}.preference")
        rows.append({**rec, "preference": pref})
    return rows


def group_crossannotations(rows: Sequence[Mapping], n_annotators: int = 4) -> list[dict]:
    """One entry per (instruction, output_1, output_2) with at least ``n_annotators`` human rows, keeping the
    first ``n_annotators`` by ``annotator_index`` (file order when absent); first-appearance order."""
    groups: dict[tuple, list[tuple[int, Mapping]]] = {}
    for i, r in enumerate(rows):
        groups.setdefault((r["instruction"], r["output_1"], r["output_2"]), []).append((i, r))
    out = []
    for key, members in groups.items():
        if len(members) < n_annotators:
            continue
        members.sort(key=lambda m: (m[1].get("annotator_index", m[0]), m[0]))
        kept = members[:n_annotators]
        out.append({"instruction": key[0], "output_1": key[1], "output_2": key[2],
                    "human": [float(m[1]["preference"]) for m in kept],
                    "generator": kept[0][1].get("generator")})
    return out


def modes(values: Sequence[float]) -> list[float]:
    """All most frequent values (several on a tie)."""
    counts = Counter(values)
    top = max(counts.values())
    return sorted(v for v, c in counts.items() if c == top)


def _score(p: float, targets: Sequence[float]) -> float:
    return float(np.mean([1.0 - abs(p - t) for t in targets]))


def _binarise(p: float) -> float:
    return 1.5 if p == 1.5 else float(np.clip(np.round(p), 1, 2))


def human_agreement(groups: Sequence[Mapping], judge_prefs: Sequence[float], binary: bool = False) -> dict:
    """Agreement (a fraction) of one judge annotation per pair with the mode of the humans (module docstring)."""
    scores, dropped = [], 0
    for g, p in zip(groups, judge_prefs):
        if p is None or math.isnan(p):
            dropped += 1
            continue
        scores.append(_score(_binarise(p) if binary else float(p), modes(g["human"])))
    return {"agreement": float(np.mean(scores)) if scores else math.nan, "n_pairs": len(scores),
            "n_dropped": dropped}


def human_leave_one_out(groups: Sequence[Mapping]) -> dict:
    """The humans row: each human vs the mode of the others, averaged over humans and pairs."""
    scores = [_score(h[i], modes(h[:i] + h[i + 1:])) for g in groups for h in [list(g["human"])]
              for i in range(len(h))]
    return {"agreement": float(np.mean(scores)) if scores else math.nan, "n_pairs": len(groups)}


def generator_correlations(groups: Sequence[Mapping], judge_prefs: Sequence[float]) -> dict | None:
    """Spearman/Pearson across generators of judge vs human win rates (None when rows lack ``generator``)."""
    gens = sorted({g["generator"] for g in groups if g.get("generator")})
    if not gens or any(not g.get("generator") for g in groups):
        return None
    human = {k: win_rate([h for g in groups if g["generator"] == k for h in g["human"]]) for k in gens}
    judge = {k: win_rate([p for g, p in zip(groups, judge_prefs) if g["generator"] == k]) for k in gens}
    return {**correlations([judge[k] for k in gens], [human[k] for k in gens]),
            "win_rates": {k: {"evaluator": judge[k], "humans": human[k]} for k in gens}}


def crossannotation_agreement(path: PathLike, judge, *, n_annotators: int = 4, limit: int | None = None,
                              template_path: PathLike | None = None, config_path: PathLike | None = None,
                              dry_run: bool = False) -> dict:
    """Table 4 at real scale: ``judge``'s agreement with alpaca_eval's human cross-annotations at ``path``.

    ``limit``: only the first ``limit`` pairs. ``dry_run``: return the judge requests instead of calling.
    """
    groups = group_crossannotations(load_crossannotations(path), n_annotators)
    if not groups:
        raise EvalInputError(f"no pair has {n_annotators} human annotations", path)
    groups = groups[:limit] if limit else groups
    pairs = [Pair(g["instruction"], g["output_1"], g["output_2"]) for g in groups]
    if dry_run:
        template = ae.load_judge_template(template_path)
        kwargs = ae.judge_request_kwargs(ae.load_judge_config(config_path))
        return {"requests": [{"messages": it.messages, **kwargs} for it in pair_items(pairs, template)
                             if it.needs_judge]}
    prefs = judge_pairs(judge, pairs, template_path=template_path, config_path=config_path)
    out = {"evaluator": judge.config.model, **human_agreement(groups, prefs),
           "agreement_binary": human_agreement(groups, prefs, binary=True)["agreement"],
           "humans": human_leave_one_out(groups), "n_annotators": n_annotators,
           "rule": "1 - |p_judge - mode(humans)|, tied modes averaged (alpaca_eval Analyzer, absolute rule)"}
    corr = generator_correlations(groups, prefs)
    if corr is not None:
        out["correlations"] = corr
    return out


# ----------------------------------------------------------------------------- command line

def format_rows(rows: Sequence[Mapping]) -> str:
    head = f"{'evaluator':<20} {'agreement %':>12} {'pairs':>6} {'dropped':>8} {'spearman':>9} {'pearson':>8}"
    lines = [head]
    for r in rows:
        sp, pe = r.get("spearman"), r.get("pearson")
        lines.append(f"{r['evaluator']:<20} {100 * r['agreement']:>12.2f} {r['n_pairs']:>6} {r.get('n_dropped', 0):>8} "
                     f"{'n/a' if sp is None else f'{sp:.2f}':>9} {'n/a' if pe is None else f'{pe:.2f}':>8}")
    return "\n".join(lines)


def add_arguments(parser) -> None:
    from judge.client import JudgeConfig
    from reproduce.scales import MODELS

    parser.add_argument("--model", default="tiny", choices=MODELS, help="scale (default tiny)")
    parser.add_argument("--outputs", type=Path, nargs="*", default=[],
                        help="tiny: AlpacaEval model_outputs.json files of the models to compare (>= 1)")
    parser.add_argument("--reference", type=Path,
                        help="tiny: the AlpacaEval reference outputs (default: the world's benchmark file)")
    parser.add_argument("--crossannotations", type=Path,
                        help="real scale: alpaca_farm_human_crossannotations JSON")
    parser.add_argument("--limit", type=int, help="only this many pairs (real scale)")
    parser.add_argument("--runs-dir", type=Path, help="tiny scale: the pipeline's runs folder")
    parser.add_argument("--out", type=Path, help="JSON result file (default results/eval/agreement-<model>.json)")
    JudgeConfig.add_cli_args(parser)


def cli(args) -> int:
    import sys

    from judge.client import JudgeClient, JudgeConfig, JudgeError

    root = Path(__file__).resolve().parent.parent / "results" / "eval"
    out = args.out or root / f"agreement-{args.model}.json"
    try:
        if args.model != "tiny":
            if not args.crossannotations:
                raise EvalInputError("real scale: give --crossannotations PATH (alpaca_farm_human_crossannotations)")
            config = JudgeConfig.from_cli(args)
            if config.cache_path is None:
                config = dataclasses.replace(config, cache_path=str(out.parent / "judge-cache" / "agreement.jsonl"))
            with JudgeClient(config) as judge:
                result = crossannotation_agreement(args.crossannotations, judge, limit=args.limit)
            rows = [result, {"evaluator": "humans", **result["humans"]}]
        else:
            from eval.run import tiny_benchmark_data
            from reproduce.pipeline import Pipeline

            if not args.outputs:
                raise EvalInputError("tiny scale: give --outputs model_outputs.json [...] (AlpacaEval answers)")
            pipe = Pipeline("tiny", runs_dir=args.runs_dir)
            reference = ae.load_outputs(args.reference or tiny_benchmark_data(pipe).alpaca_reference)
            outputs = {}
            for p in args.outputs:
                rows_p = ae.load_outputs(p)
                name = (rows_p[0].get("generator") if rows_p else None) or Path(p).stem
                outputs[name if name not in outputs else f"{name}#{len(outputs)}"] = rows_p
            models = {m: pairs_between(reference, rows, "baseline", m) for m, rows in outputs.items()}
            pairs = [p for ps in models.values() for p in ps]
            names = list(outputs)
            for i, a in enumerate(names):
                for b in names[i + 1:]:
                    pairs += pairs_between(outputs[a], outputs[b], a, b)
            rows = tiny_agreement(pipe.world, pairs, models=models, cache_dir=out.parent / "judge-cache" / "agreement")
            result = {"rows": rows}
        write_json(out, result)
        print(format_rows(rows))
        print(f"written to {out}")
    except JudgeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    return 0
