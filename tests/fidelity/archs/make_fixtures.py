#!/usr/bin/env python3
"""Make the tiny-model fidelity fixtures (fixtures/tiny-<arch>/).

For every architecture tessera supports, build a TINY randomly initialised
model with transformers from a config, save it (F32 safetensors, config.json,
generation_config.json) and record transformers' own outputs in
reference.json:
  - logits (float32, eager attention) for every position of 3 prompts of
    random token ids, one of them longer than any sliding window;
  - 16 greedy tokens from model.generate(do_sample=False) per prompt.

Usage (from the repository root):
    /work/venv-ref/bin/python tests/fidelity/archs/make_fixtures.py [arch ...]
The outputs depend only on the seed, the configs below and the versions of
torch/transformers recorded in fixtures/tiny-models-PROVENANCE.md.
"""
import json
import os
import random
import shutil
import sys

import numpy as np
import torch
import transformers
from transformers import (AutoModelForCausalLM, GemmaConfig, GPT2Config, LlamaConfig, MistralConfig,
                          MixtralConfig, Phi3Config, Qwen2Config, Qwen2MoeConfig)

SEED = 1234
OUT = "fixtures"
N_NEW = 16

# one prompt shorter than every window / original context, one longer
PROMPT_LENS = [5, 11, 20]


def llama(**kw):
    base = dict(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                rms_norm_eps=1e-5, tie_word_embeddings=False)
    base.update(kw)
    return LlamaConfig(**base)


def rope(kind, **kw):
    d = {"rope_type": kind, "rope_theta": 10000.0}
    d.update(kw)
    return d


ARCHS = {
    "llama": lambda: llama(),
    "llama-linear": lambda: llama(rope_parameters=rope("linear", factor=2.0)),
    # dynamic NTK only changes anything past max_position_embeddings
    "llama-dynamic": lambda: llama(max_position_embeddings=16, rope_parameters=rope("dynamic", factor=2.0)),
    "llama-llama3": lambda: llama(rope_parameters=rope("llama3", factor=8.0, low_freq_factor=1.0,
                                                       high_freq_factor=4.0,
                                                       original_max_position_embeddings=16)),
    "llama-yarn": lambda: llama(max_position_embeddings=64,
                                rope_parameters=rope("yarn", factor=4.0, original_max_position_embeddings=16)),
    "mistral": lambda: MistralConfig(vocab_size=256, hidden_size=32, intermediate_size=64,
                                     num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                     max_position_embeddings=128, sliding_window=8,
                                     tie_word_embeddings=False),
    "qwen2": lambda: Qwen2Config(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                                 tie_word_embeddings=True),
    "gpt2": lambda: GPT2Config(vocab_size=256, n_embd=32, n_layer=2, n_head=4, n_positions=64),
    "phi3": lambda: Phi3Config(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                               sliding_window=8, partial_rotary_factor=0.5, pad_token_id=0,
                               bos_token_id=1, eos_token_id=2, tie_word_embeddings=False),
    # longrope: prompts of 5 and 11 stay below original_max_position_embeddings
    # (32) through 16 new tokens (short factors); the 40-token one starts past
    # it (long factors from the first step); the 25-token one crosses it while
    # generating, where Phi3ForCausalLM drops the cache and recomputes
    "phi3-longrope": lambda: Phi3Config(
        vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=4, max_position_embeddings=128, original_max_position_embeddings=32,
        pad_token_id=0, bos_token_id=1, eos_token_id=2, tie_word_embeddings=False,
        rope_parameters={"rope_type": "longrope", "rope_theta": 10000.0,
                         "short_factor": [1.0, 1.3, 2.0, 3.1],
                         "long_factor": [1.0, 2.5, 6.0, 11.0]}),
    "qwen2_moe": lambda: Qwen2MoeConfig(vocab_size=256, hidden_size=32, intermediate_size=64,
                                        moe_intermediate_size=16, shared_expert_intermediate_size=32,
                                        num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                                        num_experts=4, num_experts_per_tok=2, norm_topk_prob=False,
                                        decoder_sparse_step=1, mlp_only_layers=[1],
                                        max_position_embeddings=128, tie_word_embeddings=False),
    # every layer sparse: llama.cpp's qwen2moe (GGUF) has no dense mlp_only_layers,
    # so fixtures/gguf-archs converts this one (tests/fidelity/gguf/make_gguf_archs.py)
    "qwen2_moe-sparse": lambda: Qwen2MoeConfig(vocab_size=256, hidden_size=32, intermediate_size=64,
                                               moe_intermediate_size=16, shared_expert_intermediate_size=32,
                                               num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                               num_experts=4, num_experts_per_tok=2, norm_topk_prob=False,
                                               decoder_sparse_step=1, mlp_only_layers=[],
                                               max_position_embeddings=128, tie_word_embeddings=False),
    "mixtral": lambda: MixtralConfig(vocab_size=256, hidden_size=32, intermediate_size=32, num_hidden_layers=2,
                                     num_attention_heads=4, num_key_value_heads=2, num_local_experts=4,
                                     num_experts_per_tok=2, max_position_embeddings=128,
                                     tie_word_embeddings=False),
    "gemma": lambda: GemmaConfig(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                 num_attention_heads=4, num_key_value_heads=1, head_dim=16,
                                 max_position_embeddings=128, hidden_act="gelu_pytorch_tanh",
                                 hidden_activation="gelu_pytorch_tanh"),
}

PROMPT_OVERRIDE = {"phi3-longrope": [5, 11, 40, 25]}


def seed_all(s):
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def fresh(d):
    m = AutoModelForCausalLM.from_pretrained(d, attn_implementation="eager", dtype=torch.float32)
    m.eval()
    return m


def make(name):
    seed_all(SEED)
    cfg = ARCHS[name]()
    cfg._attn_implementation = "eager"
    cfg.torch_dtype = torch.float32
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation="eager", dtype=torch.float32)
    # larger than the default 0.02 init so that routing, norms and attention
    # patterns are not all near-uniform
    with torch.no_grad():
        for pname, p in model.named_parameters():
            if p.dim() >= 2 and "embed_tokens" in pname and name == "gemma":
                p.normal_(0.0, 0.15 / cfg.hidden_size ** 0.5)  # scaled by sqrt(hidden) in the model
            elif p.dim() >= 2 and name == "gpt2":
                p.normal_(0.0, 0.4)  # GPT-2's greedy output repeats one token with smaller weights
            elif p.dim() >= 2:
                p.normal_(0.0, 0.15)
            elif "norm" in pname or "ln_" in pname:
                p.normal_(0.0 if name == "gemma" else 1.0, 0.1)
            else:
                p.normal_(0.0, 0.1)
    model.eval()
    gen = model.generation_config
    gen.do_sample = False
    gen.eos_token_id = None
    gen.pad_token_id = 0
    d = os.path.join(OUT, "tiny-" + name)
    shutil.rmtree(d, ignore_errors=True)
    model.save_pretrained(d, safe_serialization=True)
    V = cfg.vocab_size
    rng = random.Random(SEED + 1)
    cases = []
    for n in PROMPT_OVERRIDE.get(name, PROMPT_LENS):
        ids = [rng.randrange(3, V) for _ in range(n)]
        x = torch.tensor([ids])
        # a fresh copy from the saved folder for every call: rotary embeddings
        # keep state between calls (dynamic NTK grows inv_freq and keeps it),
        # and this also checks that the checkpoint round-trips
        with torch.no_grad():
            logits = fresh(d)(x).logits[0].float()
            out = fresh(d).generate(x, attention_mask=torch.ones_like(x), max_new_tokens=N_NEW, do_sample=False,
                                 eos_token_id=None, pad_token_id=0)
        new = out[0, n:].tolist()
        cases.append({"prompt_ids": ids, "logits": [[round(float(v), 7) for v in row] for row in logits],
                      "greedy": new})
    ref = {"arch": name, "model_type": cfg.model_type, "seed": SEED, "torch": torch.__version__,
           "transformers": transformers.__version__, "max_new_tokens": N_NEW, "cases": cases}
    with open(os.path.join(d, "reference.json"), "w") as f:
        json.dump(ref, f, separators=(",", ":"))
    sz = sum(os.path.getsize(os.path.join(d, x)) for x in os.listdir(d))
    print(f"{d}: {sz // 1024} KiB, greedy {[c['greedy'][:4] for c in cases]}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    names = sys.argv[1:] or list(ARCHS)
    for nm in names:
        make(nm)
