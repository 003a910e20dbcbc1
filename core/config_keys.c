/* core/config_keys.c - every configuration key, in one table.
 *
 * The table drives validation (config.c), the built-in defaults, the text
 * of `tessera config --help` and docs/configuration.md (generated: edit this
 * table, then regenerate the document with `tessera config --markdown`).
 * Names follow Hugging Face: from_pretrained() arguments at the top level,
 * the quantization configs' keys (BitsAndBytesConfig, GPTQConfig, AwqConfig,
 * HqqConfig) under quantization., GenerationConfig's under generation.
 * Defaults are transformers' own unless the doc says why not.
 */
#include "internal.h"

#define S TSR__CT_STRING
#define I TSR__CT_INT
#define R TSR__CT_REAL
#define B TSR__CT_BOOL
#define E TSR__CT_ENUM

const tsr__config_section tsr__config_sections[] = {
    {"", "Model, placement and run",
     "Which model to load, in which precision, and where its layers run."},
    {"quantization", "quantization",
     "Quantize a floating-point checkpoint while loading it, with the keys of transformers' "
     "BitsAndBytesConfig, GPTQConfig, AwqConfig and HqqConfig. A pre-quantized checkpoint "
     "(its config.json has `quantization_config`) selects its quantizer by itself."},
    {"generation", "generation",
     "Decoding, with the keys of transformers' GenerationConfig. A key left at its default "
     "yields to the model's generation_config.json; a key set in a file or on the command "
     "line wins over it."},
    {"cache", "cache", "The key/value cache."},
};
const size_t tsr__config_n_sections = sizeof tsr__config_sections / sizeof tsr__config_sections[0];

const tsr__config_key tsr__config_keys[] = {
    /* --- top level: from_pretrained() and the run ------------------------- */
    {.name = "model", .type = S,
     .doc = "Model to load: a Hugging Face folder (config.json, `*.safetensors`, tokenizer.json) "
            "or a .gguf file. `-m` on the command line."},
    {.name = "dtype", .alias = "torch_dtype", .type = E,
     .values = "float32|float16|bfloat16|auto", .dflt = "auto",
     .doc = "Precision of the floating-point weights and activations; `auto` keeps the "
            "checkpoint's (config.json `torch_dtype`). `torch_dtype` is accepted as an alias."},
    {.name = "backends", .type = TSR__CT_LIST, .item = S, .dflt = "[cpu]",
     .doc = "Backend plugins to use, tried in order; an operation one backend does not support "
            "falls back to the next. `tessera plugins` lists what is installed."},
    {.name = "threads", .type = I, .dflt = "0", .ranged = true, .min = 0, .max = 65536,
     .doc = "CPU threads; 0 uses one per available core."},
    {.name = "device_map", .type = TSR__CT_DEVICE_MAP, .item = TSR__CT_DEVICE, .dflt = "auto",
     .doc = "Where modules go: a strategy (`auto`, `balanced`, `balanced_low_0`, `sequential`), "
            "one device (`cpu`, `cuda:0`), or a mapping from module-name prefix to device, e.g. "
            "`{model.layers.0-15: cuda:0, model.layers.16-31: cpu, lm_head: cpu}`."},
    {.name = "max_memory", .type = TSR__CT_MAP, .item = TSR__CT_SIZE,
     .doc = "Memory budget per device for `device_map: auto`, e.g. `{cuda:0: 6GiB, cpu: 20GiB}`; "
            "sizes are bytes or a number with kB/MB/GB/TB (10^3) or KiB/MiB/GiB/TiB (2^10) units. "
            "Unset: all free memory. Weights past the budget are offloaded to disk."},
    {.name = "offload_folder", .type = S,
     .doc = "Folder for weights offloaded to disk (memory-mapped); unset: next to the model."},
    {.name = "seed", .type = I, .ranged = true, .min = 0, .max = 18446744073709551615.0,
     .doc = "Seed of the random number generator; unset: a different seed each run."},
    {.name = "log_level", .type = E, .values = "error|warn|info|debug", .dflt = "info",
     .doc = "Least severe messages to print."},
    {.name = "dump_tensors", .type = S,
     .doc = "Folder to write every named intermediate tensor to, to compare with "
            "transformers' hidden states (`--dump-tensors`); unset: nothing is written."},

    /* --- quantization ------------------------------------------------------ */
    {.name = "quantization.method", .type = E, .values = "bitsandbytes|gptq|awq|hqq|none",
     .dflt = "none",
     .doc = "Quantizer to apply on load (`quant_method`). `none` loads the weights as they are, "
            "unless `load_in_8bit` or `load_in_4bit` asks for bitsandbytes."},
    {.name = "quantization.load_in_8bit", .type = B, .dflt = "false",
     .doc = "bitsandbytes: LLM.int8() row-wise int8 weights with fp16 outlier columns."},
    {.name = "quantization.load_in_4bit", .type = B, .dflt = "false",
     .doc = "bitsandbytes: 4-bit weights (NF4 or FP4, see `bnb_4bit_quant_type`)."},
    {.name = "quantization.llm_int8_threshold", .type = R, .dflt = "6.0", .ranged = true,
     .min = 0, .max = 1e30,
     .doc = "bitsandbytes 8-bit: activation magnitude above which a column is an outlier kept "
            "in fp16."},
    {.name = "quantization.llm_int8_skip_modules", .type = TSR__CT_LIST, .item = S,
     .doc = "bitsandbytes: modules left unquantized; unset: the output head (`lm_head`)."},
    {.name = "quantization.bnb_4bit_quant_type", .type = E, .values = "nf4|fp4", .dflt = "fp4",
     .doc = "bitsandbytes 4-bit code book: NormalFloat4 or FP4."},
    {.name = "quantization.bnb_4bit_use_double_quant", .type = B, .dflt = "false",
     .doc = "bitsandbytes 4-bit: quantize the block absmax scales too (about 0.4 bit/weight less)."},
    {.name = "quantization.bnb_4bit_compute_dtype", .type = E,
     .values = "float32|float16|bfloat16", .dflt = "float32",
     .doc = "bitsandbytes 4-bit: precision the dequantized weights are multiplied in."},
    {.name = "quantization.bits", .type = I, .dflt = "4", .ranged = true, .min = 1, .max = 8,
     .doc = "GPTQ and AWQ: bits per weight (GPTQ: 2, 3, 4 or 8; AWQ: 4)."},
    {.name = "quantization.group_size", .type = I, .ranged = true, .min = -1, .max = 1e9,
     .doc = "GPTQ, AWQ and HQQ: weights sharing one scale and zero; -1: one group per row. "
            "Unset: 128 for GPTQ and AWQ, 64 for HQQ (each library's default)."},
    {.name = "quantization.sym", .type = B, .dflt = "true",
     .doc = "GPTQ: symmetric quantization (no zero point)."},
    {.name = "quantization.desc_act", .type = B, .dflt = "false",
     .doc = "GPTQ: quantize columns in order of decreasing activation (act-order)."},
    {.name = "quantization.dequant_dtype", .type = E, .values = "float32|float16|bfloat16",
     .dflt = "float32",
     .doc = "GPTQ (tessera's key, not GPTQConfig's): precision the dequantized weights are rounded "
            "to before they are multiplied; activations and sums stay float32. `float16` gives "
            "what GPTQModel's own CPU kernel computes (fp16 scales times the codes, in fp16); "
            "`float32` is the exact dequantization. Also applies to a pre-quantized checkpoint."},
    {.name = "quantization.damp_percent", .type = R, .dflt = "0.1", .ranged = true, .min = 0,
     .max = 1, .doc = "GPTQ: dampening added to the Hessian's diagonal, as a fraction of its mean."},
    {.name = "quantization.true_sequential", .type = B, .dflt = "true",
     .doc = "GPTQ: quantize the linears of a decoder layer in groups one after the other "
            "([q,k,v], [o], [gate,up], [down]), each calibrated with the earlier ones quantized; "
            "false: one group per layer (layers are always sequential)."},
    {.name = "quantization.dataset", .type = S,
     .doc = "GPTQ and AWQ: calibration text, a UTF-8 text file whose tokens run through the float model "
            "to collect each layer's inputs (GPTQConfig's `dataset`, here a file path); unset: "
            "no calibration (round-to-nearest; AWQ without its scale search)."},
    {.name = "quantization.calibration_tokens", .type = I, .dflt = "4096", .ranged = true,
     .min = 0, .max = 1e9,
     .doc = "GPTQ and AWQ: calibration tokens taken from the start of `dataset` at most; 0: all."},
    {.name = "quantization.model_seqlen", .type = I, .ranged = true, .min = 1, .max = 1e9,
     .doc = "GPTQ and AWQ: tokens per calibration sequence (each starts from an empty cache); unset: "
            "the model's max_position_embeddings, at most 2048."},
    {.name = "quantization.zero_point", .type = B, .dflt = "true",
     .doc = "AWQ: asymmetric quantization with a zero point."},
    {.name = "quantization.version", .type = E, .values = "gemm|gemv", .dflt = "gemm",
     .doc = "AWQ: packing layout of the checkpoint."},
    {.name = "quantization.nbits", .type = I, .dflt = "4", .ranged = true, .min = 1, .max = 8,
     .doc = "HQQ: bits per weight (1, 2, 3, 4 or 8)."},
    {.name = "quantization.axis", .type = I, .dflt = "1", .ranged = true, .min = 0, .max = 1,
     .doc = "HQQ: axis the groups run along (transformers' HqqConfig sets 1 when unset)."},
    {.name = "quantization.skip_modules", .type = TSR__CT_LIST, .item = S, .dflt = "[lm_head]",
     .doc = "HQQ: modules left unquantized."},
    {.name = "quantization.modules_to_not_convert", .type = TSR__CT_LIST, .item = S,
     .doc = "GPTQ and AWQ: modules left unquantized; unset: the output head."},

    /* --- generation: GenerationConfig ---------------------------------------- */
    {.name = "generation.max_new_tokens", .type = I, .dflt = "128", .ranged = true, .min = 0,
     .max = 2147483647.0,
     .doc = "Tokens to generate at most, the prompt not counted (`-n`). transformers leaves it "
            "unset and stops at max_length = 20 tokens in all; 128 is more useful here."},
    {.name = "generation.do_sample", .type = B, .dflt = "false",
     .doc = "Sample from the distribution; false: greedy decoding (the most likely token)."},
    {.name = "generation.temperature", .type = R, .dflt = "1.0", .ranged = true, .min = 0,
     .max = 1e30, .doc = "Divide the logits by this before sampling."},
    {.name = "generation.top_k", .type = I, .dflt = "50", .ranged = true, .min = 0,
     .max = 2147483647.0, .doc = "Sample among the k most likely tokens; 0 disables."},
    {.name = "generation.top_p", .type = R, .dflt = "1.0", .ranged = true, .min = 0, .max = 1,
     .doc = "Nucleus sampling: the smallest set of tokens whose probabilities add up to p; "
            "1.0 disables."},
    {.name = "generation.min_p", .type = R, .ranged = true, .min = 0, .max = 1,
     .doc = "Drop tokens less likely than min_p times the most likely one; unset disables."},
    {.name = "generation.repetition_penalty", .type = R, .dflt = "1.0", .ranged = true,
     .min = 1e-30, .max = 1e30,
     .doc = "Penalty for tokens already in the context (CTRL paper); 1.0 disables."},
    {.name = "generation.eos_token_id", .type = TSR__CT_LIST_OR_SCALAR, .item = I,
     .doc = "Token id, or list of ids, that end generation; unset: the model's."},
    {.name = "generation.bos_token_id", .type = I, .ranged = true, .min = 0, .max = 2147483647.0,
     .doc = "Beginning-of-sequence token id; unset: the model's."},
    {.name = "generation.pad_token_id", .type = I, .ranged = true, .min = 0, .max = 2147483647.0,
     .doc = "Padding token id; unset: the model's."},
    {.name = "generation.stop_strings", .type = TSR__CT_LIST_OR_SCALAR, .item = S,
     .doc = "Text, or list of texts, that end generation when generated."},
    {.name = "generation.seed", .type = I, .ranged = true, .min = 0,
     .max = 18446744073709551615.0,
     .doc = "Seed of the sampler; unset: the top-level `seed`."},

    /* --- cache ------------------------------------------------------------------ */
    {.name = "cache.implementation", .type = E,
     .values = "dynamic|static|quantized|offloaded|sliding_window|sink", .dflt = "dynamic",
     .doc = "Key/value cache layout, as GenerationConfig's `cache_implementation`."},
};
const size_t tsr__config_n_keys = sizeof tsr__config_keys / sizeof tsr__config_keys[0];
