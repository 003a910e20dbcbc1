#!/usr/bin/env python3
"""Convert the tiny transformers fixtures (fixtures/tiny-<arch>/) to GGUF F32
with llama.cpp's own converter, convert_hf_to_gguf.py, into
fixtures/gguf-archs/tiny-<arch>-f32.gguf.  tests/unit/test_gguf_archs.c loads
each file with tessera and compares it with the transformers reference
(fixtures/tiny-<arch>/reference.json) of the same weights.

The tiny fixtures hold no tokenizer (save_pretrained of a model only), and
every converter class writes a vocabulary, so each is converted from a copy
of its folder plus fixtures/gguf-archs/tokenizer.model: a SentencePiece BPE
model of exactly 256 pieces (unk 0, bos 1, eos 2, like the fixtures' configs)
trained here on fixtures/text/tinystories-like.txt (identity normalization,
so the file holds no NFKC table, and runs of spaces kept, as in Llama's
tokenizer.model: llama.cpp's SentencePiece tokenizer never collapses them).
The vocabulary plays no part in the logits; it only makes the files complete,
and tokenizer_reference.json holds SentencePiece's encodings of a few texts.

One converter class, Qwen2MoeModel, only knows the GPT-2 BPE path, which
accepts a tokenizer only if the hash of its encoding of a fixed text is one
of the pre-tokenizers in llama.cpp's list; a 256-token tokenizer can never
match.  For it this script gives the class the vocabulary method of its
sibling Qwen2Model (SentencePiece first, then GPT-2 BPE), so it writes the
same SentencePiece vocabulary as the others.  Nothing else in the converter
is touched: tensors, names and metadata are llama.cpp's.  llama.cpp's
qwen2moe has no dense layers (mlp_only_layers), so it converts
tiny-qwen2_moe-sparse (every layer sparse) rather than tiny-qwen2_moe, whose
layer 1 is dense ("Can not map tensor 'model.layers.1.mlp.down_proj.weight'").

Usage (from the repository root, in the reference venv):
    /work/venv-ref/bin/python tests/fidelity/gguf/make_gguf_archs.py [--llama-cpp DIR] [--retrain] [arch ...]
DIR defaults to /work/llama.cpp-src (the vendor/llama.cpp tree of the
llama_cpp_python 0.3.36 sdist); its gguf-py is used, as the converter itself
does unless NO_LOCAL_GGUF is set.
"""
import argparse
import os
import runpy
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".."))
OUT = os.path.join(ROOT, "fixtures", "gguf-archs")
TOKENIZER = os.path.join(OUT, "tokenizer.model")
ARCHS = ["llama", "llama-llama3", "llama-linear", "llama-yarn", "mistral", "qwen2", "qwen2_moe-sparse", "mixtral",
         "phi3", "phi3-longrope", "gemma"]


def train_tokenizer():
    import sentencepiece as spm
    prefix = os.path.join(tempfile.mkdtemp(), "tok")
    spm.SentencePieceTrainer.train(
        input=os.path.join(ROOT, "fixtures", "text", "tinystories-like.txt"), model_prefix=prefix,
        model_type="bpe", vocab_size=256, character_coverage=1.0, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        normalization_rule_name="identity", remove_extra_whitespaces=False, num_threads=1, minloglevel=2)
    shutil.copy(prefix + ".model", TOKENIZER)


# SentencePiece's own encodings (no BOS) with tokenizer.model, for the
# vocabulary tessera reads back from tiny-llama-f32.gguf
TOKENIZER_TEXTS = ["Once upon a time, there was a little girl named Lily.",
                   "She liked to play in the park with her dog.",
                   "  two  spaces, a tab\tand 123 digits!",
                   "The end."]


def write_tokenizer_reference():
    import json
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=TOKENIZER)
    cases = [json.dumps({"text": t, "ids": sp.encode(t)}) for t in TOKENIZER_TEXTS]
    with open(os.path.join(OUT, "tokenizer_reference.json"), "w") as f:
        f.write('{"sentencepiece": "%s", "cases": [\n  %s\n]}\n' % (spm.__version__, ",\n  ".join(cases)))


def convert_one(llama_cpp, name):
    """Run in a child process: the converter's module state is global."""
    src = os.path.join(ROOT, "fixtures", "tiny-" + name)
    with tempfile.TemporaryDirectory() as tmp:
        d = os.path.join(tmp, "tiny-" + name)
        os.mkdir(d)
        for f in ("config.json", "generation_config.json", "model.safetensors"):
            shutil.copy(os.path.join(src, f), d)
        shutil.copy(TOKENIZER, d)
        out = os.path.join(OUT, f"tiny-{name}-f32.gguf")
        r = subprocess.run([sys.executable, os.path.abspath(__file__), "--llama-cpp", llama_cpp, "--child", d,
                            out])
        if r.returncode:
            sys.exit(f"{name}: the converter failed")
        print(f"{out}: {os.path.getsize(out)} bytes")


def child(llama_cpp, d, out):
    sys.path.insert(0, llama_cpp)
    sys.path.insert(1, os.path.join(llama_cpp, "gguf-py"))
    import conversion.qwen as qwen
    # see the module comment: the only change, and only to the vocabulary
    qwen.Qwen2MoeModel.set_vocab = qwen.Qwen2Model.set_vocab
    sys.argv = ["convert_hf_to_gguf.py", d, "--outtype", "f32", "--outfile", out]
    runpy.run_path(os.path.join(llama_cpp, "convert_hf_to_gguf.py"), run_name="__main__")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp", default="/work/llama.cpp-src")
    ap.add_argument("--retrain", action="store_true", help="train tokenizer.model again")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("archs", nargs="*")
    a = ap.parse_args()
    if a.child:
        return child(a.llama_cpp, *a.child)
    os.makedirs(OUT, exist_ok=True)
    if a.retrain or not os.path.exists(TOKENIZER):
        train_tokenizer()
    write_tokenizer_reference()
    for name in a.archs or ARCHS:
        convert_one(a.llama_cpp, name)


if __name__ == "__main__":
    main()
