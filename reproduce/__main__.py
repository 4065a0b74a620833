"""``python -m reproduce``: list methods, train one, or regenerate a paper table/figure.

    python -m reproduce methods
    python -m reproduce train --method dpo --model tiny [--policy qwen2-1.5b] [--seed 0]
    python -m reproduce gold --model tiny --seeds 3 [--methods dpo kto ...]
    python -m reproduce table1|table2|table3|table4|figure2|all --model tiny [--seeds N] [--force] [--dry-run]
"""
from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _offline_for_tiny(model: str) -> None:
    if model == "tiny":  # the tiny world never needs the hub; a hub call costs ~20 s of retries
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


TARGETS = ("table1", "table2", "table3", "table4", "figure2", "all")


def run_target(pipe, target: str, seeds: list[int], judge_url=None, judge_model=None) -> list:
    """Regenerate one target (or all) under results/; returns the files written."""
    from reproduce import targets as T
    from reproduce.bench import Judging
    from reproduce.report import check_claims, write_report
    from reproduce.report_io import RESULTS

    started = time.perf_counter()
    judging = Judging(pipe, judge_url, judge_model)
    done = {}
    if target in ("table1", "all"):
        done["table1"] = T.table1(pipe, judging, seeds)
    if target in ("table2", "all"):
        done["table2"] = T.table2(pipe, judging, seeds)
    if target in ("table3", "all"):
        done["table3"] = T.table3(pipe, judging, seeds)
    if target in ("table4", "all"):
        done["table4"] = T.table4(pipe, judging, seeds)
    if target in ("figure2", "all"):
        done["figure2"] = T.figure2(pipe, seeds)
    files = [RESULTS / f"{k}.{'png' if k == 'figure2' else 'md'}" for k in done]
    if target == "all":
        files.append(T.token_heatmap(pipe, seeds[0]))
        claims = check_claims(done["table1"], done["table2"], done["table3"], done["figure2"], seeds,
                              pipe.model_name == "tiny")
        judge_desc = ("the oracle judge (tiny world's gold reward with length/markdown/position bias and noise)"
                      if not judge_url else f"{judge_model or 'judge'} at {judge_url}")
        files.append(write_report(pipe, seeds, claims, started, judge_desc))
    judging.close()
    return files


def dry_run(model: str, target: str, seeds: int) -> int:
    """The stage plan and the resources it would use; checks that weights and data are present."""
    from methods import get_method
    from reproduce import paper
    from reproduce.scales import load_scale

    cfg = load_scale(model)
    policies = ("qwen2-1.5b", "qwen2.5-1.5b") if model == "tiny" else (model,)
    rows = {"table1": paper.TABLE1_ROWS[1:], "table2": ("aligndistil-on", "aligndistil-on-vanilla"),
            "table3": tuple(f"aligndistil-off-const{r}" for r in (1.0, 1.2, 1.5, 1.8, 2.0)) + ("aligndistil-off",),
            "table4": (), "figure2": ("bandit-reinforce", "token-reinforce", "aligndistil-on-static")}
    wanted = rows if target == "all" else {target: rows[target]}
    trainings = sorted({(m, p) for t, ms in wanted.items() for m in ms
                        for p in (policies if t == "table1" else policies[-1:])})
    deps = set()
    for m, p in trainings:
        frozen = get_method(m).frozen
        deps |= {("dpo", p)} if "dpo" in frozen else set()
        deps |= {("reverse-dpo", p)} if "rev" in frozen else set()
        deps |= {("rm", policies[-1])} if "rm" in frozen else set()
    plan = sorted(set(trainings) | deps)
    print(f"plan for `{target}` at scale {model}, seeds 0..{seeds - 1}:")
    print(f"  initial policies: {', '.join(policies)}; preference data: "
          f"{'tiny world' if model == 'tiny' else 'UltraFeedback binarized'}")
    for m, p in plan:
        print(f"  train {m:<28} from {p:<13} x {seeds} seed(s)")
    n_eval = len({(m, p) for t, ms in wanted.items() if t != "figure2" for m in ms for p in policies}) + len(policies)
    print(f"  judged evaluations: {n_eval * seeds} models x (AlpacaEval 2 + MT-Bench + Arena-Hard v0.1)")
    if model != "tiny":
        print(f"  resources: training under `{cfg.get('launcher')}` (8 GPUs, DeepSpeed ZeRO-2), bf16; judge: "
              "Qwen2.5-72B-Instruct behind an OpenAI-compatible endpoint (vLLM, >= 2x80 GB GPUs)")
        print(f"  judge requests per model: ~805 AlpacaEval + 160 MT-Bench + ~1000-2000 Arena-Hard")
    else:
        print("  resources: CPU only (2 cores suffice); the oracle judge runs on 127.0.0.1")
    return 0


def _seed_count(text: str) -> int:
    """``--seeds N``: a whole number ≥ 1 (seeds 0..N-1)."""
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of seeds >= 1, got {text!r}")
    return n


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m reproduce", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("methods", help="list the method registry")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", default="tiny", help="tiny (default) | qwen2.5-1.5b | qwen2-1.5b")
    common.add_argument("--runs-dir", default=None, help="where stage outputs are cached (default: runs/)")
    common.add_argument("--force", action="store_true", help="recompute stages instead of reusing them")
    tr = sub.add_parser("train", parents=[common], help="train one method")
    tr.add_argument("--method", required=True)
    tr.add_argument("--policy", default=None, help="initial policy (tiny: qwen2-1.5b | qwen2.5-1.5b)")
    tr.add_argument("--seed", type=int, default=0)
    for target in TARGETS:
        t = sub.add_parser(target, parents=[common], help=f"regenerate {target} under results/")
        t.add_argument("--seeds", type=_seed_count, default=1, help="seeds 0..N-1 (default 1)")
        t.add_argument("--judge-url", default=None, help="an OpenAI-compatible judge endpoint (real scale)")
        t.add_argument("--judge-model", default=None, help="the judge's served model name")
        t.add_argument("--dry-run", action="store_true", help="print the stage plan and resources, run nothing")
    gd = sub.add_parser("gold", parents=[common], help="gold-reward table of trained methods (tiny)")
    gd.add_argument("--seeds", type=_seed_count, default=3)
    gd.add_argument("--methods", nargs="*", default=None)
    args = ap.parse_args(argv)

    if args.cmd == "methods":
        from methods import REGISTRY, get_method

        for name in REGISTRY:
            m = get_method(name)  # an instance: some methods set data / frozen from their config (AlignDistil)
            print(f"{name:<28} data={m.data:<9} frozen={','.join(m.frozen) or '-':<12} {vars(m.config)}")
        return 0

    _offline_for_tiny(args.model)
    from reproduce.pipeline import Pipeline
    from reproduce.scales import MissingResourceError
    from train.data import DataError

    if args.cmd == "train":
        from methods import REGISTRY

        if args.method not in REGISTRY:
            print(f"error: unknown method {args.method!r}; `python -m reproduce methods` lists them", file=sys.stderr)
            return 2

    t0 = time.perf_counter()
    if getattr(args, "dry_run", False):
        return dry_run(args.model, args.cmd, args.seeds)
    try:
        if args.model != "tiny":  # fail at once, before any work, when weights or data are missing
            from reproduce.scales import load_scale, resolve_model, resolve_ultrafeedback

            cfg = load_scale(args.model)
            resolve_model(args.model, cfg.get("weights_dir"))
            resolve_ultrafeedback(cfg.get("ultrafeedback_dir"))
            if args.cmd in TARGETS and args.cmd != "figure2" and not args.judge_url:
                raise MissingResourceError(
                    "no judge endpoint: start one with `python -m judge serve --model PATH/Qwen2.5-72B-Instruct "
                    "--tp 4` and pass --judge-url http://127.0.0.1:8000/v1 --judge-model NAME")
        pipe = Pipeline(args.model, runs_dir=args.runs_dir, force=args.force)
        if args.cmd == "train":
            policy = args.policy or ("qwen2-1.5b" if args.model == "tiny" else args.model)
            path = pipe.trained(args.method, policy, args.seed)
            print(f"trained {args.method} from {policy} (seed {args.seed}): {path}")
        elif args.cmd in TARGETS:
            files = run_target(pipe, args.cmd, list(range(args.seeds)), args.judge_url, args.judge_model)
        elif args.cmd == "gold":
            from reproduce.targets import FOUNDATION_METHODS, gold_table

            _, md = gold_table(pipe, args.methods or FOUNDATION_METHODS, list(range(args.seeds)))
            print(md.read_text())
            print(f"results: {md} (and .csv)")
    except (MissingResourceError, DataError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    wall = time.perf_counter() - t0
    print(f"\nstage times (own time of each stage; 0 = reused):\n{pipe.cache.summary(wall)}\nwall time: {wall:.1f}s",
          file=sys.stderr, flush=True)
    if args.cmd in TARGETS:  # the last lines: where the results are
        print("\nresults:\n" + "\n".join(f"  {f}" for f in files), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
