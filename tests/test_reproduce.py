"""The reproduction layer: stage cache (reuse, invalidation, resume), table rendering with paper columns, CLI."""
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from reproduce import paper
from reproduce.report_io import df_to_markdown, write_table
from reproduce.stages import StageCache, split_by_kind

ROOT = Path(__file__).resolve().parent.parent


def test_stage_is_reused_until_its_config_changes(tmp_path):
    cache = StageCache(tmp_path, log=lambda m: None)
    calls = []

    def build(d):
        calls.append(d)
        (d / "out.txt").write_text("x")

    a = cache.run("train", {"lr": 1e-4}, build)
    b = cache.run("train", {"lr": 1e-4}, build)
    assert a == b and len(calls) == 1 and (a / "DONE").exists()
    built_in = cache.recorded["train"]
    c = cache.run("train", {"lr": 2e-4}, build)
    assert c != a and len(calls) == 2
    later = StageCache(tmp_path, log=lambda m: None)  # a later run reuses it and knows what it cost to build
    later.run("train", {"lr": 1e-4}, build)
    assert len(calls) == 2 and later.timings == [("train", 0.0, "cached")]
    assert later.recorded["train"] == built_in > 0
    forced = StageCache(tmp_path, force=True, log=lambda m: None)
    forced.run("train", {"lr": 1e-4}, build)
    assert len(calls) == 3


def test_interrupted_stage_resumes_in_its_partial_folder(tmp_path):
    cache = StageCache(tmp_path, log=lambda m: None)

    def crash(d):
        (d / "checkpoint").write_text("step 5")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cache.run("train", {"k": 1}, crash)
    seen = {}

    def resume(d):
        seen["checkpoint"] = (d / "checkpoint").read_text()
        (d / "model").write_text("done")

    out = cache.run("train", {"k": 1}, resume)
    assert seen["checkpoint"] == "step 5", "the rerun sees what the killed run left"
    assert (out / "model").read_text() == "done" and not out.with_name(out.name + ".partial").exists()


def test_stage_times_are_exclusive_of_nested_stages(tmp_path):
    import time

    cache = StageCache(tmp_path, log=lambda m: None)

    def inner(d):
        time.sleep(0.2)

    def outer(d):
        cache.run("inner", {}, inner)
        time.sleep(0.05)

    cache.run("outer", {}, outer)
    t = {n: s for n, s, _ in cache.timings}
    assert t["inner"] >= 0.2 and t["outer"] < 0.2


def test_wall_time_splits_by_kind_of_stage():
    timings = [("world", 1.0, "built"), ("data", 2.0, "built"), ("initial-qwen2-1.5b", 10.0, "built"),
               ("bench-dpo-qwen2-1.5b-s0", 3.0, "built"), ("dpo-qwen2-1.5b-s0", 8.0, "built"),
               ("gold-dpo-qwen2-1.5b-s0", 0.5, "built"), ("bench-initial-qwen2-1.5b-s0", 0.0, "cached"),
               ("aligndistil-on-qwen2.5-1.5b-s0", 4.0, "built")]
    split = {kind: (s, n) for kind, s, n in split_by_kind(timings, wall=30.0)}
    assert split["world, benchmark sets, preference data"] == (3.0, 2)
    assert split["initial policies (SFT)"] == (10.0, 1)
    assert split["judged benchmarks (generation + judging)"] == (3.0, 1)  # the cached one counts 0 s, not built
    assert split["gold-reward samples"] == (0.5, 1)
    assert split["training (every method, RM, reverse DPO)"] == (12.0, 2)
    assert split["outside stages (tables, plots, report)"][0] == pytest.approx(30.0 - 28.5)
    assert sum(s for s, _ in split.values()) == pytest.approx(30.0)


def test_table_rendering_keeps_paper_columns_apart(tmp_path):
    rows = []
    for m in paper.TABLE1_ROWS:
        rows.append({"method": m, "AE2 LC": "1.00 ± 0.10", "AE2 LC (paper)": f"{paper.TABLE1['qwen2-1.5b'][m][0]:.2f}"})
    csv, md = write_table(pd.DataFrame(rows), "t", "Title", ["a note"], out_dir=tmp_path)
    text = md.read_text()
    assert text.startswith("# Title") and "| AE2 LC (paper) |" in text and "- a note" in text
    back = pd.read_csv(csv)
    assert list(back.columns) == ["method", "AE2 LC", "AE2 LC (paper)"]
    assert back.loc[back.method == "aligndistil-on", "AE2 LC (paper)"].item() == pytest.approx(12.93)
    assert df_to_markdown(pd.DataFrame({"a": ["x|y"]})).splitlines()[-1] == "| x\\|y |"


def test_paper_table_marks_the_illegible_cells():
    assert paper.TABLE1["qwen2.5-1.5b"]["aligndistil-off"][1] is None
    assert paper.TABLE1["qwen2.5-1.5b"]["aligndistil-on"][1] is None
    assert all(len(v) == len(paper.TABLE1_COLUMNS) for block in paper.TABLE1.values() for v in block.values())
    assert paper.rank_order({"a": 1.0, "b": None, "c": 3.0}) == ["c", "a", "b"]


def test_real_scale_without_weights_stops_at_once_with_what_to_download(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-m", "reproduce", "table1", "--model", "qwen2.5-1.5b"], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "Qwen/Qwen2.5-1.5B-Instruct" in r.stderr and "download" in r.stderr
    r = subprocess.run([sys.executable, "-m", "reproduce", "all", "--model", "qwen2.5-1.5b", "--dry-run"], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "train aligndistil-on" in r.stdout and "8 GPUs" in r.stdout


def test_unknown_method_is_one_clear_error():
    r = subprocess.run([sys.executable, "-m", "reproduce", "train", "--method", "dpoo"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "unknown method 'dpoo'" in r.stderr and "Traceback" not in r.stderr


def test_figure2_target_steps_and_plots(tmp_path):
    import matplotlib.image as mpimg

    from reproduce.figures import convergence_speedups, plot_figure2, plot_token_heatmap

    ramp = lambda rate: [min(1.0, rate * t) for t in range(60)]  # noqa: E731 — reaches 1.0 after 1/rate steps
    curves = {"bandit-reinforce": [ramp(0.02)], "token-reinforce": [ramp(0.04)], "aligndistil-on-static": [ramp(0.08)]}
    target, steps = convergence_speedups(curves, fraction=0.5, window=1)
    # start = mean of the first 3 values over all runs = (0.06 + 0.12 + 0.24) / 9; final of token-reinforce = 1.0
    start = (0.02 * 3 + 0.04 * 3 + 0.08 * 3) / 9
    assert target == pytest.approx(start + 0.5 * (1.0 - start))
    assert steps["aligndistil-on-static"][0] < steps["token-reinforce"][0] < steps["bandit-reinforce"][0]
    png = plot_figure2(curves, tmp_path / "figure2.png", "caption")
    assert mpimg.imread(png).shape[1] > 500
    rows = [{"prompt": "p", "tokens": ["a", "b", "<|im_end|>"], "reward": [0.1, -0.2, 0.0],
             "alpha": [0.5, 0.7, 0.3], "gold": [1.0, -0.5, 0.0]},
            {"prompt": "q", "tokens": ["c"], "reward": [0.3], "alpha": [0.9], "gold": None}]
    heat = plot_token_heatmap(rows, tmp_path / "heat.png", "title")
    assert mpimg.imread(heat).ndim == 3


@pytest.mark.parametrize("argv", [["table1", "--seeds", "0"], ["gold", "--seeds", "x"]])
def test_bad_seed_count_is_one_clear_error(argv, capsys):
    from reproduce.__main__ import main

    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "argument --seeds: expected a whole number of seeds >= 1" in capsys.readouterr().err
