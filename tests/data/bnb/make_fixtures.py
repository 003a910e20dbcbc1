#!/usr/bin/env python3
"""Make the bitsandbytes fixtures of tessera's bnb quantizer tests.

For each (model, setting): transformers' BitsAndBytesConfig quantizes the float
checkpoint on the CPU (bitsandbytes' CPU backend), save_pretrained writes the
folder fixtures/bnb-<model>-<setting>/, then the folder is loaded back with
transformers and, from that reloaded model, we write
tests/data/bnb/<model>-<setting>.safetensors holding
  <module>.weight  f32 [out, in]   bitsandbytes' own dequantization of every
                                   quantized Linear weight (tiny-llama only, to
                                   keep the files small)
  ids              i32 [T]         the prompt
  logits           f32 [T, V]      the bitsandbytes model's logits (CPU forward)
  <module>.x, .y   f32 [T, in/out] settings with a 16-bit compute dtype only: the
                                   input and output of the Linear4bit modules
                                   of PROBED during that forward
Run from the repository root with a Python that has torch, transformers,
bitsandbytes and safetensors (see PROVENANCE.md).  Arguments, if any, name the
settings to (re)make (e.g. `nf4-fp16 nf4-bf16`); the others and the code tables
are then left as they are.
"""
import json, os, shutil, sys
import torch
import bitsandbytes as bnb
import bitsandbytes.functional as F
import transformers
from transformers import AutoModelForCausalLM, BitsAndBytesConfig
from safetensors.torch import save_file

SETTINGS = {
    "nf4": dict(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=False,
                bnb_4bit_compute_dtype=torch.float32),
    "nf4-dq": dict(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                   bnb_4bit_compute_dtype=torch.float32),
    "fp4": dict(load_in_4bit=True, bnb_4bit_quant_type="fp4", bnb_4bit_use_double_quant=False,
                bnb_4bit_compute_dtype=torch.float32),
    "fp4-dq": dict(load_in_4bit=True, bnb_4bit_quant_type="fp4", bnb_4bit_use_double_quant=True,
                   bnb_4bit_compute_dtype=torch.float32),
    "int8": dict(load_in_8bit=True),
    # a float32 model whose 4-bit Linear layers compute in 16 bits
    # (Linear4bit.forward: input, bias and dequantized weight in compute_dtype)
    "nf4-fp16": dict(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=False,
                     bnb_4bit_compute_dtype=torch.float16),
    "nf4-bf16": dict(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=False,
                     bnb_4bit_compute_dtype=torch.bfloat16),
}
MODELS = {
    # name: (source folder, settings, prompt ids)
    "stories260K": ("fixtures/stories260K-hf", ["nf4", "nf4-dq", "fp4-dq", "int8", "nf4-fp16", "nf4-bf16"],
                    None),
    "tiny-llama": ("fixtures/tiny-llama", ["nf4", "nf4-dq", "fp4", "fp4-dq", "int8"],
                   [1, 17, 200, 33, 5, 99, 150, 7, 250, 64, 3, 128]),
}
# Linear4bit modules whose input and output are dumped (16-bit compute dtypes)
PROBED = ["model.layers.0.self_attn.q_proj", "model.layers.0.mlp.gate_proj",
          "model.layers.0.mlp.down_proj", "model.layers.4.mlp.down_proj"]
STORY_PROMPT = "Once upon a time, there was a little girl named Lily. She loved to play outside in the park."


def dequant(mod):
    if isinstance(mod, bnb.nn.Linear4bit):
        w = mod.weight
        return F.dequantize_4bit(w.data, w.quant_state).float()
    if isinstance(mod, bnb.nn.Linear8bitLt):
        CB = mod.weight.data if mod.weight.CB is None else mod.weight.CB
        SCB = mod.weight.SCB if mod.weight.SCB is not None else mod.state.SCB
        return F.int8_vectorwise_dequant(CB, SCB).float()
    return None


def main():
    only = set(sys.argv[1:])
    unknown = only - set(SETTINGS)
    if unknown:
        sys.exit(f"unknown settings: {sorted(unknown)} (known: {sorted(SETTINGS)})")
    torch.manual_seed(0)
    for name, (src, settings, ids) in MODELS.items():
        if ids is None:
            tok = transformers.AutoTokenizer.from_pretrained(src)
            ids = tok(STORY_PROMPT)["input_ids"]
        for s in settings:
            if only and s not in only:
                continue
            out = f"fixtures/bnb-{name}-{s}"
            shutil.rmtree(out, ignore_errors=True)
            cfg = BitsAndBytesConfig(**SETTINGS[s])
            m = AutoModelForCausalLM.from_pretrained(src, quantization_config=cfg, dtype=torch.float32,
                                                     device_map="cpu")
            m.save_pretrained(out)
            for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "LICENSE"):
                if os.path.exists(os.path.join(src, f)):
                    shutil.copy(os.path.join(src, f), out)
            del m
            m = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, device_map="cpu")
            m.eval()
            tensors = {}
            for mn, mod in m.named_modules():
                if name == "stories260K":
                    break  # its fixture checkpoints are compared code for code instead
                d = dequant(mod)
                if d is not None:
                    tensors[mn + ".weight"] = d.contiguous()
            probes = []
            if SETTINGS[s].get("bnb_4bit_compute_dtype") in (torch.float16, torch.bfloat16):
                mods = dict(m.named_modules())
                for mn in PROBED:
                    def hook(mod, inp, out, mn=mn):
                        tensors[mn + ".x"] = inp[0][0].float().contiguous()
                        tensors[mn + ".y"] = out[0].float().contiguous()
                    probes.append(mods[mn].register_forward_hook(hook))
            x = torch.tensor([ids], dtype=torch.long)
            with torch.no_grad():
                logits = m(x).logits[0].float()
            for h in probes:
                h.remove()
            tensors["ids"] = torch.tensor(ids, dtype=torch.int32)
            tensors["logits"] = logits.contiguous()
            save_file(tensors, f"tests/data/bnb/{name}-{s}.safetensors")
            print(out, len(tensors) - 2, "weights/probes", tuple(logits.shape))
    if only:
        return
    # bitsandbytes' 8-bit dynamic map (nested absmax code), as the library builds it
    save_file({"dynamic": F.create_dynamic_map(signed=True).float(),
               "nf4": F.get_4bit_type("nf4", device="cpu").float(),
               "fp4": F.get_4bit_type("fp4", device="cpu").float()},
              "tests/data/bnb/code_tables.safetensors")


if __name__ == "__main__":
    main()
