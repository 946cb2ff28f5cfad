"""The learner-facing commands: encode, explain, attention, info.

Commands run in-process through `numpybert.cli.main` (fast, and texts may hold characters a
command line cannot, such as NUL); one test runs the installed console script. Every number a
test expects is recomputed here from the model or the files, never copied from a run.
"""

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file
from tokenizers import Tokenizer

import numpybert
from helpers import assert_one_error_line, CHECKPOINTS, ROOT, run, SENTENCE, squash, tiny_model_dir
from numpybert import cli
from numpybert.loading import locate

COMMANDS = ("encode", "explain", "attention", "info")
TEXT_COMMANDS = {  # argv of each command that needs only a text
    "encode": ["encode", SENTENCE],
    "explain": ["explain", SENTENCE],
    "attention": ["attention", SENTENCE, "--layer", "0", "--head", "0"],
    "info": ["info"],
}
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- every command

def test_help_lists_the_commands(capsys):
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in COMMANDS:
        assert command in out


@pytest.mark.parametrize("command", COMMANDS)
def test_missing_default_weights_name_the_fetch_command(capsys, monkeypatch, tmp_path, command):
    """As from a wheel (no checkout) with nothing fetched: the message lists every place looked."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(locate, "checkout_root", lambda: None)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("NUMPYBERT_MODEL", raising=False)
    code, out, err = run(capsys, *TEXT_COMMANDS[command])
    assert code == 3 and out == ""
    assert_one_error_line(err, command, "--model (not given)", "$NUMPYBERT_MODEL (not set)",
                          str(tmp_path / "data" / "numpybert" / "all-MiniLM-L6-v2"), "numpybert fetch")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_takes_model(capsys, command, tmp_path):
    code, _, err = run(capsys, *TEXT_COMMANDS[command], "--model", str(tmp_path / "absent"))
    assert code == 3
    assert_one_error_line(err, command, str(tmp_path / "absent"))


def test_the_console_script_exits_with_one_line_and_no_traceback():
    script = os.path.join(os.path.dirname(sys.executable), "numpybert")
    result = subprocess.run([script, "explain", "hello", "--model", "/nonexistent/model"],
                            capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 3
    assert "Traceback" not in result.stderr
    assert_one_error_line(result.stderr, "explain", "/nonexistent/model")


# ----------------------------------------------------------------------------- explain
# (the explain command's own tests are in tests/teach/test_explain.py)


@pytest.mark.parametrize("command", ["explain", "attention"])
def test_plot_without_matplotlib_names_the_extra(capsys, monkeypatch, tmp_path, command):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` now raises ImportError
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    argv = [*TEXT_COMMANDS[command], "--plot", str(tmp_path / "x.png"), "--model", str(tmp_path / "absent")]
    code, _, err = run(capsys, *argv)
    assert code == 2  # refused before the (absent) model is even looked for
    assert_one_error_line(err, command, "pip install -e '.[plot]'")


@pytest.mark.parametrize("plot, fragment", [("x.jpg", "must end in"), ("no/such/dir/x.png", "does not exist"),
                                           ("/sys/x.png", "cannot create files in /sys")])  # unwritable for root too
def test_bad_plot_path_is_one_error_line(capsys, tmp_path, plot, fragment):
    code, _, err = run(capsys, "explain", SENTENCE, "--plot", str(tmp_path / plot))
    assert code == 2
    assert_one_error_line(err, "explain", fragment)


# ----------------------------------------------------------------------------- attention

@pytest.mark.parametrize("command", ["attention", "explain"])
def test_a_text_longer_than_the_model_reads_is_cut_with_a_note(capsys, minilm, command):
    """Never silently: the note on stderr says how many tokens the text has and how many are cut."""
    long_text = " ".join(["word"] * 600)  # 600 word pieces + [CLS] + [SEP]
    argv = [command, long_text] + (["--layer", "0", "--head", "0"] if command == "attention" else [])
    code, out, err = run(capsys, *argv)
    limit = minilm.tokenizer.model_max_length
    assert code == 0
    assert err.strip() == (f"note: the text has 602 tokens with [CLS]/[SEP]; the model reads at most {limit}, "
                           f"so {602 - limit} tokens are cut from the end (longest segment first)")
    if command == "attention":
        assert len(out.splitlines()) == 2 + limit  # the map is of the tokens the model read


def test_attention_prints_the_heads_probabilities(capsys, minilm):
    layer, head = minilm.config.num_hidden_layers - 1, minilm.config.num_attention_heads - 1
    code, out, err = run(capsys, "attention", SENTENCE, "--layer", str(layer), "--head", str(head))
    assert code == 0 and err == ""
    batch = minilm.tokenize([SENTENCE])
    probs = minilm(**batch, output_attentions=True).attentions[layer][0, head]
    tokens = minilm.tokenizer.convert_ids_to_tokens(batch["input_ids"][0])
    rows = out.splitlines()[2:]
    assert len(rows) == len(tokens)
    for q, line in enumerate(rows):
        fields = line.split()
        assert fields[:2] == [str(q), tokens[q]]
        assert fields[2:] == [f"{p:.2f}" for p in probs[q]]
        assert abs(sum(map(float, fields[2:])) - 1) <= 0.005 * len(tokens)  # each printed value rounded by ≤ 0.005


@pytest.mark.parametrize("flag, value, fragment", [("--layer", 6, "6 layers, numbered 0 to 5"),
                                                   ("--layer", -1, "numbered 0 to 5"),
                                                   ("--head", 12, "12 heads per layer, numbered 0 to 11")])
def test_attention_out_of_range_is_one_error_line(capsys, minilm, flag, value, fragment):
    assert minilm.config.num_hidden_layers == 6 and minilm.config.num_attention_heads == 12  # the fragments' premise
    argv = {"--layer": "0", "--head": "0", flag: str(value)}
    code, _, err = run(capsys, "attention", SENTENCE, "--layer", argv["--layer"], "--head", argv["--head"])
    assert code == 2
    assert_one_error_line(err, "attention", f"{flag} {value}", fragment)


def test_attention_plot_writes_a_png(capsys, minilm_dir, tmp_path):
    path = tmp_path / "attention.png"
    code, out, err = run(capsys, "attention", SENTENCE, "--pair", "A musician plays.", "--layer", "2",
                         "--head", "3", "--plot", str(path))
    assert code == 0 and err == ""
    assert path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 10_000


# ----------------------------------------------------------------------------- encode

def encode_json(capsys, *argv):
    code, out, err = run(capsys, "encode", *argv, "--format", "json")
    assert code == 0 and err == "", err
    return json.loads(out)


def test_encode_json_pooled_equals_the_models_output(capsys, minilm):
    texts = [SENTENCE, "Hello world"]
    result = encode_json(capsys, *texts)
    out = minilm(**minilm.tokenize(texts))
    # float32 -> JSON double -> float32 is exact, so the values must be equal, not just close
    assert np.array_equal(np.asarray(result["outputs"]["pooler_output"], np.float32), out.pooler_output)
    assert result["inputs"]["texts"] == texts and result["inputs"]["tokens"][1][0] == "[CLS]"


@pytest.mark.parametrize("output, key, pick", [
    ("sequence", "last_hidden_state", lambda o: o.last_hidden_state),
    ("cls", "cls", lambda o: o.last_hidden_state[:, 0]),
])
def test_encode_json_sequence_and_cls(capsys, minilm, output, key, pick):
    result = encode_json(capsys, SENTENCE, "--pair", "A musician plays.", "--output", output)
    o = minilm(**minilm.tokenize([SENTENCE], ["A musician plays."]))
    assert np.array_equal(np.asarray(result["outputs"][key], np.float32), pick(o))
    assert result["inputs"]["token_type_ids"][0][-1] == 1


def test_encode_json_tfhub_and_all(capsys, minilm):
    L = minilm.config.num_hidden_layers
    hub = encode_json(capsys, SENTENCE, "--output", "tfhub")["outputs"]
    assert set(hub) == {"sequence_output", "pooled_output", "default", "encoder_outputs"}
    assert hub["default"] == hub["pooled_output"] and hub["encoder_outputs"][-1] == hub["sequence_output"]
    assert len(hub["encoder_outputs"]) == L
    everything = encode_json(capsys, SENTENCE, "--output", "all")["outputs"]
    assert len(everything["hidden_states"]) == L + 1 and len(everything["attentions"]) == L
    assert everything["hidden_states"][-1] == everything["last_hidden_state"]


def test_encode_table_has_one_line_per_text_and_the_norms(capsys, minilm):
    texts = [SENTENCE, "Hello world"]
    code, out, err = run(capsys, "encode", *texts)
    assert code == 0 and err == ""
    pooled = minilm(**minilm.tokenize(texts)).pooler_output
    lines = out.splitlines()
    assert lines[0] == f"pooler_output  shape [2, {minilm.config.hidden_size}] float32"
    assert len(lines) == 3
    for b, line in enumerate(lines[1:]):
        assert line.startswith(f"  [{b}] ") and f"norm {np.linalg.norm(pooled[b].astype(np.float64)):.4f}" in line


def test_encode_table_sequence_shows_real_tokens_only(capsys, minilm):
    texts = [SENTENCE, "Hello world"]
    code, out, _ = run(capsys, "encode", *texts, "--output", "sequence")
    assert code == 0
    mask = minilm.tokenize(texts)["attention_mask"]
    token_rows = [line for line in out.splitlines() if line.startswith("  [")]
    assert len(token_rows) == int(mask.sum())
    assert "(padding positions not shown)" in out


@pytest.mark.parametrize("output, keys", [("pooled", None), ("tfhub", "encoder_outputs.0")])
def test_encode_npy(capsysbinary, minilm, output, keys):
    code = cli.main(["encode", SENTENCE, "--output", output, "--format", "npy"])
    data = capsysbinary.readouterr().out
    assert code == 0
    loaded = np.load(io.BytesIO(data))
    o = minilm(**minilm.tokenize([SENTENCE]), output_hidden_states=True)
    if keys is None:
        assert np.array_equal(loaded, o.pooler_output)
    else:
        assert np.array_equal(loaded[keys], o.hidden_states[1]) and np.array_equal(loaded["default"], o.pooler_output)


def test_encode_npy_refuses_a_terminal(capsys, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    code, _, err = run(capsys, "encode", "hi", "--format", "npy")
    assert code == 2
    assert_one_error_line(err, "encode", "redirect")


def test_encode_pair_count_must_match(capsys):
    code, _, err = run(capsys, "encode", "a", "b", "--pair", "c")
    assert code == 2
    assert_one_error_line(err, "encode", "1 --pair for 2 TEXT")


def test_encode_pooled_without_a_pooler_is_refused(capsys, tmp_path):
    model_dir = str(tiny_model_dir(tmp_path, "tiny-no-pooler"))
    code, _, err = run(capsys, "encode", "the cat", "--model", model_dir)
    assert code == 2
    assert_one_error_line(err, "encode", "no pooler")
    code, out, _ = run(capsys, "encode", "the cat", "--model", model_dir, "--output", "sequence")
    assert code == 0 and "last_hidden_state" in out


def test_encode_bad_choice_is_a_usage_error(capsys):
    code, _, err = run(capsys, "encode", "a", "--output", "mean")
    assert code == 2 and "invalid choice" in err


def test_encode_token_ids_match_the_tokenizers_library_on_the_parity_list(capsys, minilm_dir):
    """The parity list's texts through the command line, against `tokenizers` on tokenizer.json
    (what HF's fast tokenizer runs), with its baked-in padding and truncation turned off."""
    tricky = json.loads((ROOT / "tests" / "data" / "tricky_texts.json").read_text(encoding="utf-8"))
    reference = Tokenizer.from_file(str(minilm_dir / "tokenizer.json"))
    reference.no_padding()
    reference.no_truncation()
    singles = encode_json(capsys, *tricky["single"], "--output", "cls")["inputs"]
    pairs = encode_json(capsys, *[a for a, _ in tricky["pairs"]],
                        *[arg for _, b in tricky["pairs"] for arg in ("--pair", b)], "--output", "cls")["inputs"]
    for inputs, items in ((singles, [(t,) for t in tricky["single"]]), (pairs, tricky["pairs"])):
        for i, item in enumerate(items):
            n = sum(inputs["attention_mask"][i])
            expected = reference.encode(*item)
            assert inputs["input_ids"][i][:n] == expected.ids, f"item {i}: {item!r}"
            assert inputs["token_type_ids"][i][:n] == expected.type_ids, f"item {i}: {item!r}"


# ----------------------------------------------------------------------------- info

def test_info_positional_and_model_flag_agree(capsys, minilm_dir):
    code1, by_position, _ = run(capsys, "info", "weights/all-MiniLM-L6-v2")
    code2, by_flag, _ = run(capsys, "info", "--model", "weights/all-MiniLM-L6-v2")
    code3, by_default, _ = run(capsys, "info")
    assert code1 == code2 == code3 == 0
    assert by_position == by_flag == by_default


def test_info_counts_the_parameters_in_the_file(capsys, minilm_dir, minilm):
    _, out, _ = run(capsys, "info", str(minilm_dir))
    tensors = load_file(str(minilm_dir / "model.safetensors"))  # the safetensors library, not numpybert's reader
    total = sum(t.size for t in tensors.values() if np.issubdtype(t.dtype, np.floating))
    pooler = sum(t.size for name, t in tensors.items() if name.startswith("pooler."))
    assert f"parameters  {total:,} " in out
    assert f"  pooler      {pooler:>12,}" in out
    assert minilm.config.summary() in out
    assert squash(str(minilm.manifest)) in squash(out)


def test_info_tiny_no_pooler(capsys):
    code, out, err = run(capsys, "info", str(CHECKPOINTS / "tiny-no-pooler"))
    assert code == 0 and err == ""
    assert "no pooler_output" in out and "pooler: no pooler in the checkpoint" in out
    assert "tokenizer   none:" in out
    assert "  pooler " not in out  # no pooler parameters counted


def test_info_counts_tied_weights_once(capsys):
    model = numpybert.load(CHECKPOINTS / "tiny-pretraining")
    tensors = load_file(str(CHECKPOINTS / "tiny-pretraining" / "model.safetensors"))
    tied = "cls.predictions.decoder.weight"  # the word embedding matrix again, whether or not the file has it
    expected = sum(t.size for name, t in tensors.items()
                   if np.issubdtype(t.dtype, np.floating) and not name.endswith(tied))
    _, out, _ = run(capsys, "info", str(CHECKPOINTS / "tiny-pretraining"))
    assert model.flat_params[tied] is model.flat_params["embeddings.word_embeddings.weight"]
    assert f"parameters  {expected:,} " in out


def test_info_refuses_two_model_dirs(capsys):
    code, _, err = run(capsys, "info", "a", "--model", "b")
    assert code == 2
    assert_one_error_line(err, "info", "not both")
