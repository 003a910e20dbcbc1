#!/usr/bin/env python3
"""Make the HQQ reference fixtures with hqq itself (CPU, pytorch backend).

transformers 5.x cannot quantize with HqqConfig on load (its HQQ quantizer has
no quantize ops yet), so each nn.Linear is replaced by hqq's own HQQLinear and
the model's state_dict (HQQLinear.state_dict: W_q + encoded meta, exactly what
transformers 4.x save_pretrained wrote for HQQ) is saved with safetensors.
config.json gets HqqConfig(...).to_dict() as quantization_config.
See PROVENANCE.md for the versions and the command.
"""
import json, os, shutil, sys
import torch
from safetensors.torch import save_file, load_file
from transformers import AutoModelForCausalLM, HqqConfig
from hqq.core.quantize import HQQLinear, BaseQuantizeConfig, HQQBackend, Quantizer

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
HQQLinear.set_backend(HQQBackend.PYTORCH)
torch.manual_seed(0)

# The prompt for the logits reference (token ids; stories260K's BOS is 1).
PROMPT = [1, 403, 407, 261, 378, 350, 267, 287, 259, 370, 281, 321]


def replace_linears(model, nbits, group_size, axis, compute_dtype, skip):
    qcfg = BaseQuantizeConfig(nbits=nbits, group_size=group_size, axis=axis)
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    deq = {}
    for name in names:
        if name.split(".")[-1] in skip:
            continue
        parent = model.get_submodule(".".join(name.split(".")[:-1]))
        lin = getattr(parent, name.split(".")[-1])
        hq = HQQLinear(lin, quant_config=qcfg, compute_dtype=compute_dtype, device="cpu",
                       del_orig=False)
        setattr(parent, name.split(".")[-1], hq)
        deq[name] = hq.dequantize().float().contiguous()
    return deq


def make_model_fixture(src, dst, nbits, group_size, axis, compute_dtype):
    out = os.path.join(ROOT, "fixtures", dst)
    os.makedirs(out, exist_ok=True)
    model = AutoModelForCausalLM.from_pretrained(os.path.join(ROOT, "fixtures", src),
                                                 dtype=torch.float32)
    model.eval()
    vocab = model.config.vocab_size
    ids = torch.tensor([[t % vocab for t in PROMPT]])
    deq = replace_linears(model, nbits, group_size, axis, compute_dtype, ["lm_head"])
    # Reference logits: the float model with hqq's dequantized weights (what
    # HQQLinear.forward_pytorch computes, x @ dequantize().T, done in f32).
    fmodel = AutoModelForCausalLM.from_pretrained(os.path.join(ROOT, "fixtures", src),
                                                  dtype=torch.float32)
    with torch.no_grad():
        for name, w in deq.items():
            fmodel.get_submodule(name).weight.copy_(w)
        logits = fmodel(ids).logits[0].float()
        if compute_dtype == torch.float32:  # the HQQ model itself runs in f32 on CPU
            lq = model(ids).logits[0].float()
            assert torch.allclose(lq, logits, atol=1e-5), (lq - logits).abs().max()
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    if model.config.tie_word_embeddings:
        sd.pop("lm_head.weight", None)
    save_file(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    cfg = json.load(open(os.path.join(ROOT, "fixtures", src, "config.json")))
    hc = HqqConfig(nbits=nbits, group_size=group_size, axis=axis, skip_modules=["lm_head"])
    cfg["quantization_config"] = json.loads(json.dumps(hc.to_dict(), default=str))
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=2)
    for f in ["generation_config.json", "tokenizer.json", "tokenizer_config.json",
              "special_tokens_map.json", "LICENSE"]:
        p = os.path.join(ROOT, "fixtures", src, f)
        if os.path.exists(p):
            shutil.copy(p, out)
    ref = {f"{k}.dequantized": v for k, v in deq.items()}
    ref["input_ids"] = ids[0].to(torch.int32)
    ref["logits"] = logits.contiguous()
    save_file(ref, os.path.join(out, "reference.safetensors"))
    print(dst, "max |logits - float logits|:",
          float((logits - AutoModelForCausalLM.from_pretrained(os.path.join(ROOT, "fixtures", src),
                dtype=torch.float32)(ids).logits[0]).abs().max()))


def make_random():
    """hqq's quantize() of random weights for every nbits and both axes."""
    out = {}
    W = (torch.randn(48, 128) * 0.02).float()
    W[3, :] = 0.5                     # a constant row: denom <= 1e-4 -> scale 1
    W[7, 5] = 0.3                     # an outlier
    out["W"] = W
    for nbits in [1, 2, 3, 4, 8]:
        for axis in [0, 1]:
            for gs in [32, 64]:
                tag = f"b{nbits}_a{axis}_g{gs}"
                qcfg = BaseQuantizeConfig(nbits=nbits, group_size=gs, axis=axis)
                lin = torch.nn.Linear(128, 48, bias=False)
                lin.weight.data = W.clone()
                hq = HQQLinear(lin, quant_config=qcfg, compute_dtype=torch.float32, device="cpu")
                for k, v in hq.state_dict().items():   # the checkpoint layout
                    out[f"{tag}.{k}"] = v.contiguous()
                out[f"{tag}.dequantized"] = hq.dequantize().float().contiguous()
                # plain round-to-nearest with the same min/max init (optimize=False)
                Wq, meta = Quantizer.quantize(
                    W.clone(), nbits=nbits, group_size=gs, axis=axis, optimize=False,
                    round_zero=qcfg["weight_quant_params"]["round_zero"], bitpack=False, device="cpu")
                meta["compute_dtype"] = torch.float32
                out[f"{tag}.rtn_dequantized"] = Quantizer.dequantize(Wq.float(), meta).float().contiguous()
    save_file(out, os.path.join(ROOT, "tests", "data", "hqq", "random.safetensors"))


if __name__ == "__main__":
    make_random()
    if sys.argv[1:] == ["random"]:
        sys.exit(0)
    make_model_fixture("tiny-llama", "hqq-tiny-llama-4bit", 4, 64, 1, torch.float32)
    make_model_fixture("tiny-llama", "hqq-tiny-llama-3bit-fp16", 3, 64, 1, torch.float16)
    make_model_fixture("stories260K-hf", "hqq-stories260K-4bit", 4, 64, 1, torch.float32)
    make_model_fixture("stories260K-hf", "hqq-stories260K-2bit-axis0", 2, 64, 0, torch.float16)
