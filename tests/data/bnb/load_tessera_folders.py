#!/usr/bin/env python3
"""The other direction: folders written by `tessera quantize --method
bitsandbytes`, loaded by transformers + bitsandbytes (CPU).

For each setting, `tessera quantize` writes fixtures/stories260K-hf quantized
into OUT/<setting>; transformers loads it (dtype float32, device_map cpu) and
runs the prompt; `tessera generate --dump-tensors` runs the same folder and
prompt.  Compared: tessera's last-token logits (step000.lm_head.npy) and, for
every token, its final norm output (step000.model.norm.npy) times the float32
lm_head both share, against transformers' logits.  Nothing is written to the
repository; the result is recorded by hand in PROVENANCE.md.

usage: load_tessera_folders.py TESSERA OUT   (from the repository root)
"""
import os, shutil, subprocess, sys
import numpy as np
import torch
import bitsandbytes as bnb
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

PROMPT = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park."
Q4 = ["--set", "quantization.load_in_4bit=true"]
SETTINGS = {
    "nf4": Q4 + ["--set", "quantization.bnb_4bit_quant_type=nf4"],
    "nf4-dq": Q4 + ["--set", "quantization.bnb_4bit_quant_type=nf4",
                    "--set", "quantization.bnb_4bit_use_double_quant=true"],
    "fp4": Q4 + ["--set", "quantization.bnb_4bit_quant_type=fp4"],
    "fp4-dq": Q4 + ["--set", "quantization.bnb_4bit_quant_type=fp4",
                    "--set", "quantization.bnb_4bit_use_double_quant=true"],
    "int8": ["--set", "quantization.load_in_8bit=true"],
    "nf4-fp16": Q4 + ["--set", "quantization.bnb_4bit_quant_type=nf4",
                      "--set", "quantization.bnb_4bit_compute_dtype=float16"],
    "nf4-bf16": Q4 + ["--set", "quantization.bnb_4bit_quant_type=nf4",
                      "--set", "quantization.bnb_4bit_compute_dtype=bfloat16"],
}


def run(cmd):
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def main():
    tessera, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, "
          f"bitsandbytes {bnb.__version__}")
    rows = []
    for name, args in SETTINGS.items():
        folder, dump = os.path.join(out, name), os.path.join(out, name + "-dump")
        shutil.rmtree(folder, ignore_errors=True)
        shutil.rmtree(dump, ignore_errors=True)
        run([tessera, "quantize", "-q", "-m", "fixtures/stories260K-hf", "--method", "bitsandbytes",
             *args, "-o", folder])
        run([tessera, "generate", "-q", "-t", "1", "-m", folder, "-p", PROMPT, "-n", "1",
             "--dump-tensors", dump])
        m = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, device_map="cpu").eval()
        n_q = sum(isinstance(x, (bnb.nn.Linear4bit, bnb.nn.Linear8bitLt)) for x in m.modules())
        ids = AutoTokenizer.from_pretrained(folder)(PROMPT, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            ref = m(ids).logits[0].float().numpy()
        norm = np.load(os.path.join(dump, "step000.model.norm.npy"))
        last = np.load(os.path.join(dump, "step000.lm_head.npy"))
        assert norm.shape[0] == ids.shape[1], (norm.shape, ids.shape)
        head = m.lm_head.weight.detach().float().numpy()
        all_tok = np.abs(norm.astype(np.float64) @ head.T.astype(np.float64) - ref).max()
        d_last = np.abs(last - ref[-1]).max()
        rows.append((name, n_q, d_last, all_tok))
        print(f"{name}: {n_q} bitsandbytes modules; max |logit diff| last token {d_last:.3g}, "
              f"all {ids.shape[1]} tokens {all_tok:.3g}", flush=True)
    print("\n| folder | bnb modules | last token | all tokens |\n|---|---|---|---|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {r[2]:.2g} | {r[3]:.2g} |")


if __name__ == "__main__":
    main()
