#!/usr/bin/env python3
"""Quantize small models with GPTQModel itself (GPTQ and AWQ, CPU only) and dump
what tessera's tests compare against.  See tests/data/gptq/PROVENANCE.md
("Fixtures quantized by GPTQModel") for the versions and the exact command.

For each NAME below it writes

  fixtures/NAME/                       GPTQModel's own .save() output (config.json,
                                       quantize_config.json, model.safetensors), plus
                                       the tokenizer files and LICENSE of the source
  tests/data/{gptq,awq}/NAME.safetensors
      ids              i32 [T]         the prompt
      logits           f32 [T, V]      the library's model: fixtures/NAME loaded back by
                                       transformers' from_pretrained, which builds
                                       GPTQModel's CPU kernels (TorchAtenLinear /
                                       TorchLinear / TorchAtenAwqLinear); activations in
                                       the folder's dtype (float32 for the GPTQ folders,
                                       float16 for the AWQ one), weights dequantized in
                                       the fp16 dtype of `scales`
      logits_f32       f32 [T, V]      a float32 transformers LlamaForCausalLM of the
                                       folder's tensors with the weight_f32 weights
      <module>.weight  f16 [out, in]   GPTQModel's dequantization of every quantized
                                       module as its kernels run it (fp16 scales, so
                                       an fp16 result): PackableQuantLinear.
                                       dequantize_weight (GPTQ), dequantize_gemm (AWQ)
      <module>.weight_f32 f32 [out, in] the same function with the scales cast to
                                       float32 (the exact dequantization)

Run from the repository root with CUDA_VISIBLE_DEVICES="" GPTQMODEL_CPU_WORKERS=2.
"""
import json
import os
import shutil
import sys
import tempfile

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("GPTQMODEL_CPU_WORKERS", "2")

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from gptqmodel import GPTQModel, QuantizeConfig
from gptqmodel.nn_modules.qlinear import BaseQuantLinear, PackableQuantLinear
from gptqmodel.quantization.awq.utils.packing_utils import dequantize_gemm
from transformers import AutoModelForCausalLM, AutoTokenizer

torch.manual_seed(0)

STORY_PROMPT = "Once upon a time, there was a little girl named Lily."
TEXT = "fixtures/text/tinystories-like.txt"

# name: (source, kind, QuantizeConfig kwargs)
MODELS = {
    "gptq-stories260K-gptqmodel-4bit": (
        "fixtures/stories260K-hf", "gptq",
        dict(bits=4, group_size=32, desc_act=True, sym=True)),
    "gptq-tiny-llama-gptqmodel-4bit-asym": (
        "fixtures/tiny-llama", "gptq",
        dict(bits=4, group_size=32, desc_act=False, sym=False)),
    # 3-bit and AWQ need other shapes than tiny-llama's and stories260K's (see
    # PROVENANCE.md): "tiny-llama64" is tiny-llama's config widened so that every
    # Linear has N a multiple of 64 (hidden 64, 4 heads of 16, 4 KV heads,
    # intermediate 128), random weights made here by transformers (seed 0).
    "gptq-tiny-llama64-gptqmodel-3bit": (
        "tiny-llama64", "gptq",
        dict(bits=3, group_size=32, desc_act=True, sym=True)),
    "awq-tiny-llama64-gptqmodel": (
        "tiny-llama64", "awq",
        dict(bits=4, group_size=32, sym=False, quant_method="awq", format="gemm")),
}
COPY = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "LICENSE"]


def calibration(src):
    lines = [l.strip() for l in open(TEXT) if len(l.strip()) > 40]
    if os.path.exists(os.path.join(src, "tokenizer.json")):
        tok = AutoTokenizer.from_pretrained(src)
        return [{"input_ids": tok(l)["input_ids"], "attention_mask": [1] * len(tok(l)["input_ids"])}
                for l in lines], tok
    # tiny-llama has no tokenizer (vocab 256): bytes of the same text, BOS = 1
    out = []
    for l in lines:
        ids = [1] + [b for b in l.encode()]
        out.append({"input_ids": ids, "attention_mask": [1] * len(ids)})
    return out, None


def prompt_ids(src, tok):
    if tok is not None:
        return tok(STORY_PROMPT)["input_ids"]
    return [1] + list(STORY_PROMPT.encode())[:15]


def make_tiny_llama64():
    from transformers import AutoConfig
    cfg = AutoConfig.from_pretrained("fixtures/tiny-llama")
    cfg.hidden_size, cfg.intermediate_size = 64, 128
    cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim = 4, 4, 16
    torch.manual_seed(0)
    m = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32)
    d = tempfile.mkdtemp()
    m.save_pretrained(d)
    return d


def dump(name, src, kind, out, tok):
    ids = prompt_ids(src, tok)
    x = torch.tensor([ids], dtype=torch.long)
    # loaded back the way users load it: transformers + GPTQModel's kernels
    q = AutoModelForCausalLM.from_pretrained(out, device_map="cpu")
    q.eval()
    tensors = {"ids": torch.tensor(ids, dtype=torch.int32)}
    with torch.no_grad():
        tensors["logits"] = q(x).logits[0].float().contiguous()
        dq = {}
        kernels = set()
        ck = safe_open(os.path.join(out, "model.safetensors"), "pt")
        for mn, mod in q.named_modules():
            if not isinstance(mod, BaseQuantLinear):
                continue
            kernels.add(f"{type(mod).__name__}(scales {mod.scales.dtype})")
            for key, sdt in ((".weight", None), (".weight_f32", torch.float32)):
                scales = mod.scales if sdt is None else mod.scales.to(sdt)
                if kind == "awq":  # what AwqTorchLinear.forward multiplies by, applied
                    # to the checkpoint's tensors (TorchAtenAwqLinear repacks its own)
                    qw, qz, sc = (ck.get_tensor(f"{mn}.{t}") for t in ("qweight", "qzeros", "scales"))
                    w = dequantize_gemm(qw, qz, sc if sdt is None else sc.to(sdt), mod.bits, mod.group_size)
                else:              # GPTQ: PackableQuantLinear.dequantize_weight
                    s16 = mod.scales
                    mod.scales = scales
                    w = PackableQuantLinear.dequantize_weight(mod)
                    mod.scales = s16
                    if sdt is None:  # the same as the kernel module's own method
                        assert torch.equal(w, mod.dequantize_weight()), mn
                assert w.shape == (mod.in_features, mod.out_features), (mn, w.shape)
                # [out, in]; the fp16-scale result is an fp16 tensor: kept as is
                assert w.dtype == (torch.float16 if sdt is None else torch.float32), (mn, w.dtype)
                tensors[mn + key] = w.t().contiguous()
            dq[mn] = tensors[mn + ".weight_f32"]
    q_dtype = q.dtype
    del q
    # float32 transformers model of the same folder with the exact dequantization
    sd = {}
    with safe_open(os.path.join(out, "model.safetensors"), "pt") as f:
        for k in f.keys():
            if not k.endswith((".qweight", ".qzeros", ".scales", ".g_idx")):
                sd[k] = f.get_tensor(k).float()
    for mn, w in dq.items():
        sd[mn + ".weight"] = w.float()
    cfg = json.load(open(os.path.join(out, "config.json")))
    del cfg["quantization_config"]
    from transformers import LlamaConfig
    fm = AutoModelForCausalLM.from_config(LlamaConfig(**cfg), dtype=torch.float32)
    missing, unexpected = fm.load_state_dict(sd, strict=False)
    missing = [k for k in missing if k != "lm_head.weight" or not cfg.get("tie_word_embeddings")]
    assert not missing and not unexpected, (missing, unexpected)
    fm.eval()
    with torch.no_grad():
        tensors["logits_f32"] = fm(x).logits[0].float().contiguous()
        # cross-check (printed, not stored): the same model with the fp16 weights
        for mn in dq:
            fm.get_submodule(mn).weight.copy_(tensors[mn + ".weight"].float())
        d16 = (fm(x).logits[0].float() - tensors["logits"]).abs().max().item()
    d = (tensors["logits"] - tensors["logits_f32"]).abs().max().item()
    sub = "awq" if kind == "awq" else "gptq"
    save_file(tensors, f"tests/data/{sub}/{name}.safetensors")
    print(f"{name}: model dtype {q_dtype}, kernels {sorted(kernels)}, {len(dq)} modules, logits {tuple(tensors['logits'].shape)}, "
          f"max |library - f32 exact dequant| = {d:.3g}, "
          f"max |library - f32 model with the fp16 dequant| = {d16:.3g}")



def main(only=None):
    for name, (src, kind, qkw) in MODELS.items():
        if only and name not in only:
            continue
        out = os.path.join("fixtures", name)
        if os.environ.get("REUSE") and os.path.exists(out):  # only redo the dumps
            calib, tok = calibration(src if not src.startswith("tiny-llama64") else "fixtures/tiny-llama")
            dump(name, src, kind, out, tok)
            continue
        if os.path.exists(out):
            shutil.rmtree(out)
        if src == "tiny-llama64":
            src = make_tiny_llama64()
        calib, tok = calibration(src)
        qc = QuantizeConfig(**qkw)
        load_src = src
        if tok is None:
            # GPTQModel.load always loads a tokenizer; tiny-llama has none.  Give it
            # stories260K's (never used: the calibration is already token ids < 256)
            # in a temporary copy, and drop the tokenizer files it saves.
            load_src = tempfile.mkdtemp()
            for f in os.listdir(src):
                shutil.copy(os.path.join(src, f), load_src)
            for f in COPY[:3]:
                shutil.copy(os.path.join("fixtures/stories260K-hf", f), load_src)
        # GPTQ quantizes the float32 model; GPTQModel's AWQ packer accepts only a
        # float16/bfloat16 model (AwqTorchLinear), so AWQ folders store fp16 tensors
        m = GPTQModel.load(load_src, qc, dtype=torch.float16 if kind == "awq" else torch.float32)
        m.quantize(calib, tokenizer=tok, batch_size=1)
        m.save(out)
        del m
        for f in COPY:
            if os.path.exists(os.path.join(src, f)):
                shutil.copy(os.path.join(src, f), os.path.join(out, f))
        for f in ["quant_log.csv"] + (COPY[:3] if tok is None else []):
            if os.path.exists(os.path.join(out, f)):
                os.remove(os.path.join(out, f))

        dump(name, src, kind, out, tok)


if __name__ == "__main__":
    main(sys.argv[1:] or None)
