#!/usr/bin/env python3
"""Split fixtures/stories260K-hf/model.safetensors into 3 shards plus a
model.safetensors.index.json, in the layout transformers' save_pretrained
writes (model-0000K-of-00003.safetensors, {"metadata": {"total_size": N},
"weight_map": {tensor: shard}}), using the reference `safetensors` package.

Run once from the repository root; the output is committed in
fixtures/stories260K-hf-sharded/ (see its PROVENANCE.md).
"""
import json
import os
import shutil
import sys

from safetensors import safe_open
from safetensors.numpy import save_file

SRC = "fixtures/stories260K-hf"
DST = "fixtures/stories260K-hf-sharded"
N_SHARDS = 3
COPIED = ["config.json", "generation_config.json", "tokenizer.json",
          "tokenizer_config.json", "special_tokens_map.json", "LICENSE"]


def main():
    os.makedirs(DST, exist_ok=True)
    with safe_open(os.path.join(SRC, "model.safetensors"), "np") as f:
        names = list(f.keys())  # sorted by name, as safetensors stores them
        tensors = {k: f.get_tensor(k) for k in names}
        metadata = f.metadata()
    # Contiguous runs of names, sizes as even as whole tensors allow
    # (save_pretrained's max_shard_size packs greedily in the same way).
    total = sum(t.nbytes for t in tensors.values())
    shards, cur, cur_bytes = [], [], 0
    for k in names:
        if cur and cur_bytes >= total * (len(shards) + 1) / N_SHARDS:
            shards.append(cur)
            cur, cur_bytes = [], cur_bytes
        cur.append(k)
        cur_bytes += tensors[k].nbytes
    shards.append(cur)
    assert len(shards) == N_SHARDS, [len(s) for s in shards]
    weight_map = {}
    for i, keys in enumerate(shards):
        fname = "model-%05d-of-%05d.safetensors" % (i + 1, N_SHARDS)
        save_file({k: tensors[k] for k in keys}, os.path.join(DST, fname),
                  metadata=metadata)
        for k in keys:
            weight_map[k] = fname
    index = {"metadata": {"total_size": total},
             "weight_map": dict(sorted(weight_map.items()))}
    with open(os.path.join(DST, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)
        f.write("\n")
    for name in COPIED:
        shutil.copyfile(os.path.join(SRC, name), os.path.join(DST, name))
    for i, keys in enumerate(shards):
        print("shard %d: %d tensors" % (i + 1, len(keys)), file=sys.stderr)


if __name__ == "__main__":
    main()
