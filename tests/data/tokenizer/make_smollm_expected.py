#!/usr/bin/env python3
"""Make smollm_expected.txt with Hugging Face `tokenizers` (see PROVENANCE.md).

Lines: <variant>\t<text, escaped \\ \n \t \r>\t<ids, space separated>.  Variant
"base" is fixtures/smollm-135m-tokenizer-hf/tokenizer.json as is; the others
replace its normalizer / pre_tokenizer with those in smollm_variants.json.
Padding and truncation are switched off, as transformers does."""
import json, sys
from tokenizers import Tokenizer

ROOT = sys.argv[1] if len(sys.argv) > 1 else "."
base = json.load(open(f"{ROOT}/fixtures/smollm-135m-tokenizer-hf/tokenizer.json"))
variants = json.load(open(f"{ROOT}/tests/data/tokenizer/smollm_variants.json"))
inp = open(f"{ROOT}/fixtures/llamacpp-vocab/ggml-vocab-gpt-2.gguf.inp").read()
texts = inp.split("\n__ggml_vocab_test__\n")[:-1] + [
    "<|im_start|>user\nHi there!<|im_end|>\n<|im_start|>assistant\n",
    "x[PAD]y <|endoftext|>z", "Price: $1,234.56 (approx.) -- 2024-01-31",
    "  leading and trailing  ", "ÀÉÎÕÜ çñ ǅ ﬁ ①② Ⅻ", "日本語のテキスト、中文文本。",
    "emoji 👍🏽 family 👨\u200d👩\u200d👧", "tabs\tand\nnewlines\r\nend",
    "CamelCaseWords and snake_case_words", "don't I'll we're THEY'VE", "well-known multi-part-word",
    "ÅNGSTRÖM Ꭰ ß İstanbul", "def f(x):\n    return x**2  # square\n",
]

def esc(s):
    return s.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")

out = ["# made by make_smollm_expected.py with tokenizers " + __import__("tokenizers").__version__]
for name in ["base"] + list(variants):
    j = dict(base)
    j.update(variants.get(name, {}))
    tok = Tokenizer.from_str(json.dumps(j))
    tok.no_padding()
    tok.no_truncation()
    for t in texts:
        ids = tok.encode(t, add_special_tokens=True).ids
        out.append(f"{name}\t{esc(t)}\t{' '.join(map(str, ids))}")
open(f"{ROOT}/tests/data/tokenizer/smollm_expected.txt", "w").write("\n".join(out) + "\n")

# Decoding: tokenizer folder, skip_special_tokens, ids -> text.
cases = [
    ("fixtures/smollm-135m-tokenizer-hf", [1, 4093, 198, 26843, 665, 17, 2, 198, 1, 520, 9531, 198, 49152, 0]),
    ("fixtures/smollm-135m-tokenizer-hf", [216, 5248, 241, 227, 116, 96]),
    ("fixtures/llama2-tokenizer-spm", [1, 15043, 29871, 243, 162, 169, 156, 2, 29871, 13]),
    ("fixtures/llama2-tokenizer-spm", [243, 15043, 162]),
    ("fixtures/llama2-tokenizer-spm", [29871, 29871, 13]),
    ("fixtures/llama2-tokenizer-spm", [1, 1, 15043, 0, 29889]),
    ("fixtures/gpt2-tokenizer-hf", [50256, 15496, 11, 995, 0, 50256, 220, 198, 12520, 99]),
]
out = ["# made by make_smollm_expected.py with tokenizers " + __import__("tokenizers").__version__]
for d, ids in cases:
    tok = Tokenizer.from_file(f"{ROOT}/{d}/tokenizer.json")
    for skip in (0, 1):
        text = tok.decode(ids, skip_special_tokens=bool(skip))
        out.append(f"{d}\t{skip}\t{' '.join(map(str, ids))}\t{esc(text)}")
open(f"{ROOT}/tests/data/tokenizer/decode_expected.txt", "w").write("\n".join(out) + "\n")
