"""Read the stories260K GGUF fixtures with transformers' own GGUF loader
(from_pretrained(..., gguf_file=...)) and compare its logits with the
reference outputs that tessera's tests use (fixtures/stories260K-reference);
then the same for llama.cpp's GGUFs of the tiny architecture fixtures
(fixtures/gguf-archs) against fixtures/tiny-<arch>/reference.json.

Run by hand in the reference venv (tests/fidelity/README.md):
    /work/venv-ref/bin/python tests/fidelity/gguf/check_transformers_gguf.py
Writes tests/fidelity/gguf/RESULTS.md.  Not a test dependency.
"""
import json, os, sys
import numpy as np
import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM

root = os.path.dirname(os.path.abspath(__file__)) + "/../../.."
ref = json.load(open(f"{root}/fixtures/stories260K-reference/reference_outputs.json"))
rows = []
for name in ["stories260K-f32.gguf", "stories260K-f16.gguf", "stories260K-q4_k_m.gguf"]:
    d = f"{root}/fixtures/stories260K-gguf"
    try:
        # transformers takes llama.cpp's "none" (uint32 -1) padding id literally and then refuses
        # its own embedding; clear it, as tessera does
        cfg = AutoConfig.from_pretrained(d, gguf_file=name)
        if cfg.pad_token_id is not None and cfg.pad_token_id >= cfg.vocab_size:
            cfg.pad_token_id = None
        m = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, config=cfg, dtype=torch.float32)
    except Exception as e:  # report, do not hide
        rows.append(f"| {name} | transformers could not load it: {type(e).__name__}: {str(e)[:120]} | | |")
        continue
    m.eval()
    worst, same = 0.0, 0
    for c in ref["cases"]:
        ids = torch.tensor([c["all_ids"][:8]])
        with torch.no_grad():
            lg = m(ids).logits[0].numpy()
        r = np.array(c["logits_first_positions"], dtype=np.float64)[: lg.shape[0]]
        worst = max(worst, float(np.abs(lg - r).max()))
        n = len(c["prompt_ids_with_bos"])
        out = m.generate(torch.tensor([c["prompt_ids_with_bos"]]), max_new_tokens=len(c["all_ids"]) - n,
                         do_sample=False)[0].tolist()
        same += out == c["all_ids"]
    note = ""
    if "q4_k_m" in name:
        # the mixed file: transformers' greedy text against llama.cpp's, recorded for tessera's test
        want = "".join(l for l in open(f"{root}/tests/data/gguf/stories260K-q4_k_m.llamacpp.txt")
                       if not l.startswith("#"))
        out = m.generate(torch.tensor([[1, 403, 407, 261, 378]]), max_new_tokens=64, do_sample=False)[0]
        # transformers' GGUF tokenizer conversion also trips over the uint32 -1 ids, so decode
        # with the file's own vocabulary (SentencePiece pieces, byte tokens <0xXX>)
        from gguf import GGUFReader
        r = GGUFReader(f"{d}/{name}")
        f = r.fields["tokenizer.ggml.tokens"]
        pieces = [bytes(f.parts[i]).decode("utf-8") for i in f.data]
        raw = b""
        for t in out[5:].tolist():
            p = pieces[t]
            if p.startswith("<0x") and p.endswith(">") and len(p) == 6:
                raw += bytes([int(p[3:5], 16)])
            elif not (p.startswith("<") and p.endswith(">")):
                raw += p.replace("\u2581", " ").encode("utf-8")
        text = raw.decode("utf-8", errors="replace")
        note = "greedy text after 'Once upon a time' equals llama.cpp's (and tessera's)" if text == want \
            else f"greedy text differs from llama.cpp's: {text[:80]!r}"
    rows.append(f"| {name} | {worst:.3g} | {same}/{len(ref['cases'])} | {note} |")

# fixtures/gguf-archs: llama.cpp's converter on the tiny transformers fixtures, against
# transformers' own outputs for the same weights (fixtures/tiny-<arch>/reference.json)
ARCHS = ["llama", "llama-linear", "llama-yarn", "llama-llama3", "mistral", "qwen2", "qwen2_moe-sparse",
         "mixtral", "phi3", "phi3-longrope", "gemma"]


def config_differences(arch, d, name):
    """The settings transformers' GGUF config differs in from the original config.json."""
    try:
        got = AutoConfig.from_pretrained(d, gguf_file=name).to_dict()
    except Exception as e:
        return f"config: {type(e).__name__}: {str(e)[:100]}"
    want = json.load(open(f"{root}/fixtures/tiny-{arch}/config.json"))

    def rope(c):
        rp = c.get("rope_parameters") or c.get("rope_scaling") or {}
        return {"rope_type": rp.get("rope_type", "default"),
                "partial_rotary_factor": rp.get("partial_rotary_factor", c.get("partial_rotary_factor") or 1.0)}
    diffs = []
    for k in ["model_type", "sliding_window", "num_local_experts", "moe_intermediate_size",
              "shared_expert_intermediate_size"]:
        if want.get(k) is not None and got.get(k) != want[k]:
            diffs.append(f"{k} {got.get(k)} (not {want[k]})")
    rw, rg = rope(want), rope(got)
    diffs += [f"{k} {rg[k]} (not {rw[k]})" for k in rw if rg[k] != rw[k]]
    return "; ".join(diffs)


rows2 = []
for arch in ARCHS:
    d, name = f"{root}/fixtures/gguf-archs", f"tiny-{arch}-f32.gguf"
    ref = json.load(open(f"{root}/fixtures/tiny-{arch}/reference.json"))
    npos = 8 if arch == "mistral" else None  # the GGUF has no sliding window (see PROVENANCE.md)
    try:
        m = AutoModelForCausalLM.from_pretrained(d, gguf_file=name, dtype=torch.float32,
                                                 attn_implementation="eager")
    except Exception as e:  # report, do not hide
        rows2.append(f"| {name} | transformers could not load it: {type(e).__name__}: {str(e)[:120]} | | "
                     f"{config_differences(arch, d, name)} |")
        continue
    m.eval()
    worst, same = 0.0, 0
    for c in ref["cases"]:
        ids = torch.tensor([c["prompt_ids"]])
        with torch.no_grad():
            lg = m(ids).logits[0].numpy()
            out = m.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=len(c["greedy"]),
                             do_sample=False, eos_token_id=None, pad_token_id=0)[0, ids.shape[1]:].tolist()
        r = np.array(c["logits"], dtype=np.float64)
        k = min(npos or lg.shape[0], lg.shape[0])
        worst = max(worst, float(np.abs(lg[:k] - r[:k]).max()))
        same += out == c["greedy"]
    note = config_differences(arch, d, name)
    if npos:
        note += f"; logits at positions < {npos} only"
    rows2.append(f"| {name} | {worst:.3g} | {same}/{len(ref['cases'])} | {note} |")

with open(os.path.dirname(os.path.abspath(__file__)) + "/RESULTS.md", "w") as f:
    f.write("# transformers' GGUF loader on the stories260K GGUF fixtures\n\n")
    f.write(f"transformers {transformers.__version__}, torch {torch.__version__}, float32, CPU; "
            "command: `python tests/fidelity/gguf/check_transformers_gguf.py`.\n"
            "Compared with fixtures/stories260K-reference (the same reference tessera's tests use).\n\n")
    f.write("| file | max abs logit difference vs the F32 reference, first 8 positions, 4 prompts | greedy tokens identical to the F32 reference | note |\n|---|---|---|---|\n")
    f.write("\n".join(rows) + "\n")
    f.write("\n# transformers' GGUF loader on llama.cpp's GGUFs of the tiny fixtures (fixtures/gguf-archs)\n\n"
            "Each file was written by llama.cpp's convert_hf_to_gguf.py from fixtures/tiny-<arch>/ "
            "(fixtures/gguf-archs/PROVENANCE.md); compared with that folder's reference.json, transformers' "
            "outputs for the original safetensors (tessera's tests/unit/test_gguf_archs.c uses the same "
            "reference and gets below 3e-6 on every file).\n\n")
    f.write("| file | max abs logit difference vs transformers on the safetensors, all prompt positions | "
            "prompts whose 16 greedy tokens are identical | what transformers' GGUF config lost |\n"
            "|---|---|---|---|\n")
    f.write("\n".join(rows2) + "\n")
print("\n".join(rows + rows2))
