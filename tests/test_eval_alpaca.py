"""AlpacaEval 2 layer: prompts, order randomisation, logprob parsing, WR/LC metrics, files and CLI."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from eval import alpaca_eval2 as ae
from eval.common import EvalInputError

pytestmark = pytest.mark.filterwarnings("ignore:pkg_resources is deprecated:UserWarning")
REPO = Path(__file__).resolve().parents[1]
UPSTREAM = Path("/work/shared/upstream/alpaca_eval")
REFERENCE_JSON = UPSTREAM / "results/gpt4_1106_preview/model_outputs.json"
needs_upstream = pytest.mark.skipif(not UPSTREAM.is_dir(),
                                    reason="upstream copies not present at /work/shared/upstream")


def reply(top: dict[str, float]) -> dict:
    """A chat-completion reply whose first generated token has these top logprobs."""
    tops = [{"token": t, "logprob": lp, "bytes": list(t.encode())} for t, lp in top.items()]
    first = max(top, key=top.get)
    return {"id": "x", "object": "chat.completion", "choices": [{
        "index": 0, "finish_reason": "length", "message": {"role": "assistant", "content": first},
        "logprobs": {"content": [{"token": first, "logprob": top[first], "top_logprobs": tops}]}}]}


def rows_from(prefs, out1="base", out2="model!") -> list[dict]:
    return [{"instruction": f"q{i}", "output_1": out1, "output_2": out2, "generator_1": "base",
             "generator_2": "mine", "annotator": "j", "preference": p} for i, p in enumerate(prefs)]


# ----------------------------------------------------------------------------- real upstream files

@pytest.fixture(scope="module")
def reference():
    return ae.load_outputs(REFERENCE_JSON)


@needs_upstream
def test_reference_outputs_load(reference):
    assert len(reference) == 805
    counts = pd.Series([r["dataset"] for r in reference]).value_counts().to_dict()
    assert counts == {"selfinstruct": 252, "oasst": 188, "koala": 156, "helpful_base": 129, "vicuna": 80}
    assert {r["generator"] for r in reference} == {"gpt4_1106_preview"}


@needs_upstream
def test_template_and_config_from_package_match_upstream_copies():
    packaged = ae.load_judge_template()
    assert packaged == (UPSTREAM / "evaluators_configs/alpaca_eval_clf_gpt4_turbo/alpaca_eval_clf.txt").read_text()
    expected = {"max_tokens": 1, "temperature": 1, "logprobs": True, "top_logprobs": 5}
    assert ae.judge_request_kwargs(ae.load_judge_config()) == expected
    cfg = ae.load_judge_config(UPSTREAM / "evaluators_configs/weighted_alpaca_eval_gpt4_turbo/configs.yaml")
    assert ae.judge_request_kwargs(cfg) == expected
    assert cfg["completion_parser_kwargs"]["is_binarize"] is False


@needs_upstream
def test_all_805_requests_build_and_match_upstream_prompt_code(reference):
    from alpaca_eval.utils import make_prompts, prompt_to_chatml

    template = ae.load_judge_template()
    dummy = "DUMMY MODEL OUTPUT"
    items = ae.build_judge_items(reference, ae.make_model_outputs(reference, [dummy] * 805, "dummy"), template)
    assert len(items) == 805 and all(it.needs_judge for it in items)
    assert 300 < sum(it.is_switched for it in items) < 505  # a fair coin per instruction
    for it, ref in zip(items, reference):
        system, user = it.messages
        assert system["role"] == "system" and user["role"] == "user"
        assert ref["instruction"] in user["content"] and ref["output"].strip() in user["content"]
        assert dummy in user["content"]
        for placeholder in ("{instruction}", "{output_1}", "{output_2}"):
            assert placeholder not in user["content"]
        after_instruction = user["content"].index(ref["instruction"]) + len(ref["instruction"])
        shown_first = user["content"].index(dummy) < user["content"].index(ref["output"].strip(), after_instruction)
        assert shown_first == it.is_switched
    # the same prompts as upstream's own builder, for a sample of rows
    for it in items[:40]:
        o1, o2 = (it.output_2, it.output_1) if it.is_switched else (it.output_1, it.output_2)
        df = pd.DataFrame([{"instruction": it.instruction, "output_1": o1, "output_2": o2}])
        assert it.messages == prompt_to_chatml(make_prompts(df, template)[0][0])


def test_switch_coin_matches_upstream():
    from alpaca_eval.utils import random_seeded_choice

    for i in range(60):
        instruction = f"instruction number {i}"
        for seed in (0, 1):
            expected = random_seeded_choice(seed=f"is_switched_outputs{instruction}{seed}", choices=[False, True])
            assert ae.is_switched(instruction, seed) == expected


def test_fill_template_first_occurrence_and_braces_safe():
    template = "<|im_start|>user\nI: {instruction} / {output_1} / {output_2} / again {output_1}\n<|im_end|>"
    text = ae.fill_template(template, {"instruction": "say {x}", "output_1": "a {b}", "output_2": "c"})
    assert text.count("a {b}") == 1 and text.endswith("again {output_1}\n<|im_end|>")
    content = text[len("<|im_start|>user\n"):-len("\n<|im_end|>")]
    assert ae.chatml_to_messages(text) == [{"role": "user", "content": content}]
    named = ae.chatml_to_messages("<|im_start|>system name=example_user\n hi \n<|im_end|>")
    assert named == [{"role": "system", "name": "example_user", "content": "hi"}]


def test_identical_outputs_get_1_5_without_judge():
    ref = [{"instruction": "a", "output": "same", "generator": "b"},
           {"instruction": "b", "output": "x", "generator": "b"}]
    mine = [{"instruction": "a", "output": "same", "generator": "m"},
            {"instruction": "b", "output": "y", "generator": "m"}]
    items = ae.build_judge_items(ref, mine, "<|im_start|>user\n{instruction} {output_1} {output_2}<|im_end|>")
    assert not items[0].needs_judge and items[1].needs_judge
    row = ae.annotation_row(items[0])
    assert row["preference"] == 1.5 and row["raw_completion"] is None


def test_mismatched_instructions_raise():
    ref = [{"instruction": "a", "output": "x", "generator": "b"}]
    with pytest.raises(ValueError, match="1 missing"):
        ae.build_judge_items(ref, [{"instruction": "other", "output": "y"}],
                             "<|im_start|>user\n{instruction}{output_1}{output_2}<|im_end|>")


# ----------------------------------------------------------------------------- parsing

def test_parse_both_tokens_missing_is_nan_and_dropped():
    assert math.isnan(ae.parse_judge_response(reply({"The": -0.1, "Model": -2.0, "m ": -3.0})))
    assert math.isnan(ae.parse_judge_response({"choices": [{"message": {"content": "m"}}]}))  # no logprobs
    metrics = ae.win_rate_metrics(rows_from([2.0, float("nan"), 1.0]))
    assert metrics["n_total"] == 2 and metrics["n_dropped"] == 1 and metrics["win_rate"] == pytest.approx(50.0)


def test_parse_matches_upstream_logprob_parser():
    from alpaca_eval.completion_parsers import logprob_parser

    for top in ({"m": -0.3, "M": -1.4, "x": -5.0}, {"M": -0.01}, {"m": -0.2, "Both": -3.0}, {"M": -2.0, "m": -2.0}):
        choice = reply(top)["choices"][0]
        expected = logprob_parser(choice, numerator_token="m", denominator_tokens=["m", "M"], is_binarize=False)[0]
        assert ae.parse_judge_response(reply(top)) == pytest.approx(expected)
        assert ae.parse_judge_response(choice) == pytest.approx(expected)  # a stored raw_completion parses too
    p_m = math.exp(-0.3) / (math.exp(-0.3) + math.exp(-1.4))
    assert ae.parse_judge_response(reply({"m": -0.3, "M": -1.4})) == pytest.approx(2 - p_m)


def test_swapped_row_is_mapped_back():
    ref = [{"instruction": f"t{i}", "output": "base", "generator": "b"} for i in range(20)]
    mine = [{"instruction": f"t{i}", "output": "mine", "generator": "m"} for i in range(20)]
    items = ae.build_judge_items(ref, mine, "<|im_start|>user\n{instruction}|{output_1}|{output_2}<|im_end|>")
    switched = next(it for it in items if it.is_switched)
    plain = next(it for it in items if not it.is_switched)
    assert switched.messages[0]["content"].endswith("|mine|base")
    # the judge picks the model's output in both cases: it is "m" when switched, "M" otherwise
    assert ae.annotation_row(switched, reply({"m": -0.01, "M": -4.6}))["preference"] == pytest.approx(1.99, abs=0.01)
    assert ae.annotation_row(plain, reply({"M": -0.01, "m": -4.6}))["preference"] == pytest.approx(1.99, abs=0.01)
    assert ae.unswitch(1.2, True) == pytest.approx(1.8) and ae.unswitch(1.2, False) == 1.2


# ----------------------------------------------------------------------------- win rate

def test_win_rate_equals_hand_computed_value():
    prefs = [2.0, 1.0, 1.5, 1.8, float("nan"), 1.25]
    outs = ["abc", "abcd", "abcd", "ab", "abcdefgh", "a"]  # model lengths: mean 3.667 -> 3 (truncated)
    rows = [dict(r, output_2=o) for r, o in zip(rows_from(prefs), outs)]
    y = np.array([1.0, 0.0, 0.5, 0.8, 0.25])
    m = ae.win_rate_metrics(rows)
    assert m["win_rate"] == pytest.approx(100 * y.mean())  # 51.0
    assert m["standard_error"] == pytest.approx(100 * y.std(ddof=1) / math.sqrt(5))
    assert (m["n_wins"], m["n_wins_base"], m["n_draws"], m["n_total"], m["n_dropped"]) == (2, 2, 1, 5, 1)
    assert m["avg_length"] == 3 and m["discrete_win_rate"] == pytest.approx(50.0)


# ----------------------------------------------------------------------------- length control

def length_biased_rows(n=240, model_longer=True, seed=0, edge=0.3, length_weight=1.5):
    """Judge preference = sigma(edge - length_weight * tanh(z)), z = (b - m)/sd(b - m): longer output favoured.

    Lengths vary per instruction and the model is longer (or shorter) on average but not always.
    """
    rng = np.random.default_rng(seed)
    base_len = rng.integers(300, 2500, n)
    ratio = np.exp(rng.normal(0.35 if model_longer else -0.35, 0.5, n))
    model_len = np.maximum((base_len * ratio).astype(int), 20)
    delta = base_len - model_len
    prefs = 1 + 1 / (1 + np.exp(-(edge - length_weight * np.tanh(delta / delta.std(ddof=1)))))
    return [{"instruction": f"i{i}", "output_1": "b" * int(b), "output_2": "m" * int(m), "generator_1": "base",
             "generator_2": "mine", "annotator": "j", "preference": float(p)}
            for i, (b, m, p) in enumerate(zip(base_len, model_len, prefs))]


def write_df_gamed(path, n, seed=1):
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(size=n)
    frames = []
    for model, sign in (("verbose", 1), ("concise", -1)):
        delta = rng.normal(sign * -1.0, 0.5, n)  # verbose gamed baseline: longer than the baseline
        pref = 1 / (1 + np.exp(-(-1.2 * np.tanh(delta))))
        frames.append(pd.DataFrame({"index": np.arange(n), "instruction_difficulty": difficulty, "preference": pref,
                                    "std_delta_len": delta, "not_gamed_baseline": False, "model": model}))
    pd.concat(frames).to_csv(path, index=False)
    return difficulty


@pytest.mark.parametrize("model_longer", [True, False])
def test_lc_variant_moves_against_length_bias(model_longer):
    rows = length_biased_rows(model_longer=model_longer)
    wr = ae.win_rate_metrics(rows)["win_rate"]
    lc = ae.length_controlled_metrics(rows)
    assert lc["lc_variant"] == ae.LC_VARIANT_MINIMAL
    assert lc["lc_weights"]["np.tanh(std_delta_len)"] < 0  # baseline-longer rows lose for the model
    if model_longer:
        assert lc["length_controlled_winrate"] < wr - 5
    else:
        assert lc["length_controlled_winrate"] > wr + 5
    truth = 100 / (1 + math.exp(-0.3))  # the judge's length-free preference
    assert abs(lc["length_controlled_winrate"] - truth) < abs(wr - truth)
    assert lc["length_controlled_winrate"] == pytest.approx(truth, abs=1.0)  # the fit recovers the edge


def test_lc_with_local_df_gamed_uses_alpaca_eval_offline(tmp_path):
    rows = length_biased_rows(model_longer=True)
    write_df_gamed(tmp_path / "df_gamed.csv", len(rows))
    before = os.environ.get("HF_HUB_OFFLINE")
    m = ae.compute_metrics(rows, df_gamed=tmp_path / "df_gamed.csv")
    assert os.environ.get("HF_HUB_OFFLINE") == before
    assert m["lc_variant"] == ae.LC_VARIANT_UPSTREAM
    assert m["length_controlled_winrate"] < m["win_rate"] - 5
    assert m["length_controlled_winrate_noreg"] < m["win_rate"] - 5
    with pytest.raises(EvalInputError, match="covers 100 instructions"):
        write_df_gamed(tmp_path / "small.csv", 100)
        ae.length_controlled_metrics(rows, df_gamed=tmp_path / "small.csv")


def test_offline_hub_sets_flag_and_never_downloads(tmp_path, monkeypatch):
    import huggingface_hub.constants as hub_constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    (tmp_path / "df_gamed.csv").write_text("index\n0\n")
    with ae._offline_hub(tmp_path / "df_gamed.csv", None) as glm:
        assert os.environ["HF_HUB_OFFLINE"] == "1" and hub_constants.HF_HUB_OFFLINE is True
        local = glm.hf_hub_download(repo_id="tatsu-lab/alpaca_eval", filename="df_gamed.csv")
        assert local == str(tmp_path / "df_gamed.csv")
        with pytest.raises(EvalInputError, match="instruction_difficulty.csv"):
            glm.hf_hub_download(repo_id="tatsu-lab/alpaca_eval", filename="instruction_difficulty.csv")
    assert "HF_HUB_OFFLINE" not in os.environ
    assert glm.hf_hub_download is not None and glm.hf_hub_download.__name__ == "hf_hub_download"


def test_own_glm_equals_alpaca_eval_minimal_and_noreg(tmp_path):
    rows = length_biased_rows(model_longer=False, seed=3)
    rows[5]["preference"] = float("nan")
    difficulty = write_df_gamed(tmp_path / "df_gamed.csv", len(rows))
    pd.Series(difficulty, name="instruction_difficulty").to_csv(tmp_path / "difficulty.csv")
    frame = pd.DataFrame(rows)
    with ae._offline_hub(tmp_path / "df_gamed.csv", None) as glm:
        upstream = {name: glm.get_length_controlled_winrate(frame.copy(), glm_name=name, save_weights_dir=None)
                    for name in ("length_controlled_minimal", "length_controlled_noreg")}
    ours_minimal = ae.length_controlled_metrics(rows)
    ours_noreg = ae.length_controlled_metrics(rows, instruction_difficulty=tmp_path / "difficulty.csv")
    assert ours_noreg["lc_variant"] == ae.LC_VARIANT_NOREG
    assert ours_minimal["length_controlled_winrate"] == pytest.approx(
        upstream["length_controlled_minimal"]["length_controlled_winrate"], abs=1e-6)
    assert ours_noreg["length_controlled_winrate"] == pytest.approx(
        upstream["length_controlled_noreg"]["length_controlled_winrate"], abs=1e-6)


def test_lc_of_baseline_against_itself_is_50():
    rows = [dict(r, generator_2="base") for r in length_biased_rows(n=30)]
    assert ae.length_controlled_metrics(rows)["length_controlled_winrate"] == pytest.approx(50.0)


# ----------------------------------------------------------------------------- files

def test_annotations_roundtrip_and_reparse(tmp_path):
    ref = [{"instruction": f"t{i}", "output": f"base {i}", "generator": "b", "dataset": "d"} for i in range(12)]
    mine = [{"instruction": f"t{i}", "output": f"mine {i}", "generator": "m"} for i in range(12)]
    items = ae.build_judge_items(ref, mine, "<|im_start|>user\n{instruction}|{output_1}|{output_2}<|im_end|>")
    replies = [reply({"m": -0.1 * i, "M": -0.5}) if i != 4 else reply({"x": -0.1}) for i in range(12)]
    rows = [ae.annotation_row(it, r) for it, r in zip(items, replies)]
    ae.write_annotations(tmp_path / "annotations.json", rows)
    assert json.loads((tmp_path / "annotations.json").read_text())[4]["preference"] is None
    back = ae.read_annotations(tmp_path / "annotations.json")
    assert math.isnan(back[4]["preference"])
    reparsed = ae.reparse_annotations(back)
    for a, b in zip(rows, reparsed):
        both_nan = math.isnan(a["preference"]) and math.isnan(b["preference"])
        assert both_nan or a["preference"] == pytest.approx(b["preference"])
    assert {"instruction", "output_1", "output_2", "generator_1", "generator_2", "annotator", "preference",
            "raw_completion"} <= set(back[0])
    back[7]["raw_completion"] = None
    with pytest.raises(EvalInputError, match="row 7 has no raw_completion"):
        ae.reparse_annotations(back)


def test_loader_errors_name_file_and_place(tmp_path):
    bad = tmp_path / "model_outputs.json"
    bad.write_text(json.dumps([{"instruction": "a", "output": "x", "generator": "g"},
                               {"instruction": "b", "generator": "g"}]))
    with pytest.raises(EvalInputError, match=r"model_outputs.json \(field 'record 1.output'\): missing field"):
        ae.load_outputs(bad)
    bad.write_text('[{"instruction": "a",\n "output": }]')
    with pytest.raises(EvalInputError, match=r"model_outputs.json:2: invalid JSON"):
        ae.load_outputs(bad)
    bad.write_text('{"instruction": "a", "output": "x"}')
    with pytest.raises(EvalInputError, match=r"model_outputs.json: expected a JSON list of outputs, got dict"):
        ae.load_outputs(bad)
    annotations = tmp_path / "annotations.json"
    annotations.write_text(json.dumps([{"instruction": "a", "output_1": "x", "output_2": "y", "generator_1": "g",
                                        "generator_2": "h", "preference": 1.0}, ["not", "an", "object"]]))
    with pytest.raises(EvalInputError, match=r"annotations.json: row 1 is not an object"):
        ae.read_annotations(annotations)
    rows = [{"instruction": "a", "output": "x", "generator": "g"}]
    ae.write_model_outputs(tmp_path / "out.json", rows)
    assert ae.load_outputs(tmp_path / "out.json") == rows


# ----------------------------------------------------------------------------- CLI

def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "eval", "score", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_cli_scores_annotations(tmp_path):
    rows = length_biased_rows(n=120, model_longer=True)
    rows[0]["preference"] = float("nan")
    ae.write_annotations(tmp_path / "annotations.json", rows)
    expected = ae.win_rate_metrics(rows)
    write_df_gamed(tmp_path / "df_gamed.csv", len(rows))
    result = run_cli("alpaca_eval2", "--judgments", tmp_path / "annotations.json",
                     "--df-gamed", tmp_path / "df_gamed.csv")
    assert result.returncode == 0, result.stderr
    assert "length_controlled_winrate" in result.stdout and f"{expected['win_rate']:.2f}" in result.stdout
    assert ae.LC_VARIANT_UPSTREAM in result.stdout and "mine" in result.stdout
    lines = result.stdout.splitlines()
    assert lines[1].split()[-1] == "1"  # n_dropped


def test_cli_bad_annotations_exit_2(tmp_path):
    path = tmp_path / "annotations.json"
    path.write_text('[\n{"instruction": "a", "output_1": "x", "output_2": "y", "generator_1": "b",\n'
                    ' "generator_2": "m", "preference": }\n]')
    result = run_cli("alpaca_eval2", "--judgments", path)
    assert result.returncode == 2
    assert f"{path}:3" in result.stderr and "invalid JSON" in result.stderr
    path.write_text(json.dumps([{"instruction": "a", "output_1": "x", "output_2": "y", "generator_1": "b",
                                 "generator_2": "m", "preference": "high"}]))
    result = run_cli("alpaca_eval2", "--judgments", path)
    assert result.returncode == 2 and "row 0.preference" in result.stderr
