"""Make fixtures/gptq-tiny-llama and fixtures/awq-tiny-llama from fixtures/tiny-llama.

Weights are quantized round-to-nearest here (numpy) and PACKED the way the
libraries write them, following their published code as read:
  GPTQ: GPTQModel 7.7.0 gptqmodel/nn_modules/qlinear/__init__.py pack_original
        (qweight [K*bits/32, N] packed along K, qzeros [G, N*bits/32] packed
        along N holding zero-1 for checkpoint_format "gptq", scales fp16 [G, N],
        g_idx int32 [K]); act-order with a random permutation of the columns.
  AWQ:  AutoAWQ 0.2.9 awq/modules/linear/gemm.py WQLinear_GEMM.from_linear
        (qweight [K, N/8], qzeros [G, N/8], order_map [0,2,4,6,1,3,5,7],
        scales fp16 [G, N]).
The AWQ fixture is then dequantized with AutoAWQ's OWN unpack_awq and
reverse_awq_order (imported from the autoawq 0.2.9 sdist, pure torch) and
compared with the dequantized weights used for the reference logits.
reference.json: logits of transformers' LlamaForCausalLM (float32) with the
dequantized weights, for the ids below.
Run: /work/venv-ref/bin/python tests/data/gptq/make_fixtures.py /tmp/gq/dl/autoawq-0.2.9
"""
import json, os, shutil, sys
import numpy as np, torch
from safetensors.numpy import load_file, save_file

SRC = "fixtures/tiny-llama"
IDS = [1, 5, 17, 42, 99, 3, 200, 7, 64, 128, 255, 0]
rng = np.random.default_rng(1234)
W = load_file(os.path.join(SRC, "model.safetensors"))
cfg = json.load(open(os.path.join(SRC, "config.json")))
linear = [k for k in W if k.endswith("_proj.weight")]

def pack_gptq_rows(iw, bits):  # iw [K, N] uint32 -> [ceil(K*bits/32), N] (pack_original)
    K, N = iw.shape
    pf = 32 // bits
    q = np.zeros(((K * bits + 31) // 32, N), dtype=np.uint32)
    for row in range(q.shape[0]):
        for j in range(min(pf, K - row * pf)):
            q[row] |= iw[row * pf + j] << (bits * j)
    return q

def gptq(bits=4, gs=32):
    out, deq = {}, {}
    for name in linear:
        w = W[name].astype(np.float32)  # [N, K]
        N, K = w.shape
        G = K // gs
        perm = rng.permutation(K)
        g_idx = np.empty(K, dtype=np.int32)
        g_idx[perm] = np.arange(K) // gs  # group of column perm[i] is i // gs
        maxq = 2 ** bits - 1
        scales = np.zeros((G, N), np.float32)
        for g in range(G):
            cols = np.where(g_idx == g)[0]
            amax = np.abs(w[:, cols]).max(1)
            s = 2 * amax / maxq
            s[s == 0] = 1
            scales[g] = s.astype(np.float16).astype(np.float32)
        zero = (maxq + 1) // 2
        iw = np.clip(np.round(w.T / scales[g_idx]) + zero, 0, maxq).astype(np.uint32)  # [K, N]
        deq[name] = (scales[g_idx] * (iw.astype(np.float32) - zero)).T
        qzeros = np.zeros((G, N * bits // 32), np.uint32)
        z = np.full((G, N), zero - 1, np.uint32)  # checkpoint_format "gptq": zero - 1
        pf = 32 // bits
        for col in range(qzeros.shape[1]):
            for j in range(pf):
                qzeros[:, col] |= z[:, col * pf + j] << (bits * j)
        m = name[: -len(".weight")]
        out[m + ".qweight"] = pack_gptq_rows(iw, bits).view(np.int32)
        out[m + ".qzeros"] = qzeros.view(np.int32)
        out[m + ".scales"] = scales.astype(np.float16)
        out[m + ".g_idx"] = g_idx
    qc = {"quant_method": "gptq", "bits": bits, "group_size": gs, "desc_act": True, "sym": True,
          "damp_percent": 0.01, "true_sequential": True, "static_groups": False,
          "checkpoint_format": "gptq"}
    return out, deq, qc

AWQ_ORDER = [0, 2, 4, 6, 1, 3, 5, 7]

def awq(gs=32):
    out, deq, raw = {}, {}, {}
    for name in linear:
        w = W[name].astype(np.float32)
        N, K = w.shape
        G = K // gs
        wg = w.reshape(N, G, gs)
        mx, mn = wg.max(2), wg.min(2)
        s = (np.maximum(mx - mn, 1e-5) / 15).astype(np.float16).astype(np.float32)  # [N, G]
        z = np.clip(-np.round(mn / s), 0, 15)
        q = np.clip(np.round(wg / s[:, :, None]) + z[:, :, None], 0, 15).astype(np.uint32)
        deq[name] = ((q - z[:, :, None]) * s[:, :, None]).reshape(N, K).astype(np.float32)
        iw = q.reshape(N, K).T  # [K, N]
        qweight = np.zeros((K, N // 8), np.uint32)
        zt = z.T.astype(np.uint32)  # [G, N]
        qzeros = np.zeros((G, N // 8), np.uint32)
        for col in range(N // 8):
            for i in range(8):
                qweight[:, col] |= iw[:, col * 8 + AWQ_ORDER[i]] << (i * 4)
                qzeros[:, col] |= zt[:, col * 8 + AWQ_ORDER[i]] << (i * 4)
        m = name[: -len(".weight")]
        out[m + ".qweight"] = qweight.view(np.int32)
        out[m + ".qzeros"] = qzeros.view(np.int32)
        out[m + ".scales"] = s.T.astype(np.float16).copy()
        raw[m] = (out[m + ".qweight"], out[m + ".qzeros"], out[m + ".scales"], gs)
    qc = {"quant_method": "awq", "bits": 4, "group_size": gs, "zero_point": True,
          "version": "gemm", "modules_to_not_convert": None}
    return out, deq, qc, raw

def reference_logits(deq):
    from transformers import LlamaForCausalLM
    model = LlamaForCausalLM.from_pretrained(SRC, torch_dtype=torch.float32).eval()
    sd = model.state_dict()
    for k, v in deq.items():
        sd[k].copy_(torch.from_numpy(np.ascontiguousarray(v)))
    with torch.no_grad():
        return model(torch.tensor([IDS])).logits[0].numpy()

def write(dst, tensors, deq, qc):
    os.makedirs(dst, exist_ok=True)
    for k, v in W.items():
        if k not in linear:
            tensors[k] = v
    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()},
              os.path.join(dst, "model.safetensors"), metadata={"format": "pt"})
    c = dict(cfg)
    c["quantization_config"] = qc
    json.dump(c, open(os.path.join(dst, "config.json"), "w"), indent=2)
    shutil.copy(os.path.join(SRC, "generation_config.json"), dst)
    lg = reference_logits(deq)
    json.dump({"ids": IDS, "logits": [[float(x) for x in r] for r in lg]},
              open(os.path.join(dst, "reference.json"), "w"))

t, d, qc = gptq()
write("fixtures/gptq-tiny-llama", t, d, qc)
t, d, qc, raw = awq()
write("fixtures/awq-tiny-llama", t, d, qc)
# cross-check with AutoAWQ's own unpacking (pure torch functions of the sdist)
sys.path.insert(0, os.path.join(sys.argv[1], "awq", "utils"))
import packing_utils as pu
worst = 0.0
for m, (qw, qz, sc, gs) in raw.items():
    iw, iz = pu.unpack_awq(torch.from_numpy(qw), torch.from_numpy(qz), 4)
    iw, iz = pu.reverse_awq_order(iw, iz, 4)
    iw, iz = iw & 15, iz & 15
    iz = iz.repeat_interleave(gs, dim=0)
    scl = torch.from_numpy(sc).float().repeat_interleave(gs, dim=0)
    w_lib = ((iw.float() - iz.float()) * scl).T.numpy()  # [N, K]
    worst = max(worst, float(np.abs(w_lib - d[m + ".weight"]).max()))
print("AutoAWQ unpack vs fixture dequantization: max |diff| =", worst)
assert worst == 0.0
