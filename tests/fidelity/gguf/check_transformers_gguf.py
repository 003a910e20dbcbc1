"""Read the stories260K GGUF fixtures with transformers' own GGUF loader
(from_pretrained(..., gguf_file=...)) and compare its logits with the
reference outputs that tessera's tests use (fixtures/stories260K-reference).

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
with open(os.path.dirname(os.path.abspath(__file__)) + "/RESULTS.md", "w") as f:
    f.write("# transformers' GGUF loader on the stories260K GGUF fixtures\n\n")
    f.write(f"transformers {transformers.__version__}, torch {torch.__version__}, float32, CPU; "
            "command: `python tests/fidelity/gguf/check_transformers_gguf.py`.\n"
            "Compared with fixtures/stories260K-reference (the same reference tessera's tests use).\n\n")
    f.write("| file | max abs logit difference vs the F32 reference, first 8 positions, 4 prompts | greedy tokens identical to the F32 reference | note |\n|---|---|---|---|\n")
    f.write("\n".join(rows) + "\n")
print("\n".join(rows))
