/* tests/abi/offsets.c - the frozen layout of plugin ABI 1.0, checked at
 * compile time (as ONNX Runtime does with static_assert(offsetof ...)).
 *
 * Compiled twice by tests/cmake/abi.cmake: against include/ and against the
 * frozen copy tests/abi/sdk-1.0.  If either build fails, a 1.0 member was
 * moved, resized or removed, or an enum value was renumbered: that breaks
 * every plugin already built.  Append new members at the end of a struct
 * (under "since 1.N") instead, and never change the numbers below.
 *
 * The literal offsets are those of LP64 targets (x86_64, aarch64, ppc64le,
 * s390x, riscv64); other data models only get the ordering checks.
 */
#include <assert.h>
#include <stddef.h>
#include <tessera/tessera.h>
#include <tessera/plugin/plugin.h>

#if defined(__LP64__) || defined(_LP64)
#  define OFF(type, member, lp64) \
    static_assert(offsetof(type, member) == (lp64), #type "." #member " moved")
#  define END(type, last, lp64) \
    static_assert(offsetof(type, last) + sizeof(((type *)0)->last) == (lp64), \
                  #type ": the 1.0 members end elsewhere")
#else
#  define OFF(type, member, lp64) \
    static_assert(offsetof(type, member) < sizeof(type), #type "." #member " missing")
#  define END(type, last, lp64) \
    static_assert(offsetof(type, last) < sizeof(type), #type "." #last " missing")
#endif

/* Versions: the major is what this file freezes. */
static_assert(TSR_ABI_MAJOR == 1, "this file describes ABI 1.x");
static_assert(TSR_ABI_MINOR >= 0, "minor versions only grow");

/* --- tsr_plugin_desc (plugin.h) ---------------------------------------- */
OFF(tsr_plugin_desc, struct_size, 0);
OFF(tsr_plugin_desc, abi_major, 4);     /* these three sit here in EVERY  */
OFF(tsr_plugin_desc, abi_minor, 6);     /* major version, so a core can   */
OFF(tsr_plugin_desc, kind, 8);          /* always read and refuse a plugin */
OFF(tsr_plugin_desc, name, 16);
OFF(tsr_plugin_desc, version, 24);
OFF(tsr_plugin_desc, description, 32);
OFF(tsr_plugin_desc, probe, 40);
OFF(tsr_plugin_desc, vtable, 48);
END(tsr_plugin_desc, vtable, 56);
static_assert(sizeof(((tsr_plugin_desc *)0)->abi_major) == 2, "abi_major is 16 bits");
static_assert(TSR_PLUGIN_BACKEND == 1 && TSR_PLUGIN_QUANTIZER == 2 && TSR_PLUGIN_MODEL == 3,
              "plugin kinds are frozen");

/* --- tsr_host (host.h) ----------------------------------------------------- */
OFF(tsr_host, struct_size, 0);
OFF(tsr_host, abi_major, 4);
OFF(tsr_host, abi_minor, 6);
OFF(tsr_host, log, 8);
OFF(tsr_host, set_error, 16);
OFF(tsr_host, alloc, 24);
OFF(tsr_host, calloc, 32);
OFF(tsr_host, free, 40);
OFF(tsr_host, f16_to_f32, 48);
OFF(tsr_host, f32_to_f16, 56);
OFF(tsr_host, bf16_to_f32, 64);
OFF(tsr_host, f32_to_bf16, 72);
OFF(tsr_host, to_f32, 80);
OFF(tsr_host, dtype_size, 88);
OFF(tsr_host, dtype_name, 96);
OFF(tsr_host, json_get, 104);
OFF(tsr_host, json_at, 112);
OFF(tsr_host, json_type, 120);
OFF(tsr_host, json_size, 128);
OFF(tsr_host, json_int, 136);
OFF(tsr_host, json_real, 144);
OFF(tsr_host, json_bool, 152);
OFF(tsr_host, json_string, 160);
OFF(tsr_host, declare_param, 168);
OFF(tsr_host, node, 176);
OFF(tsr_host, view, 184);
OFF(tsr_host, constant, 192);
OFF(tsr_host, param, 200);
OFF(tsr_host, input_ids, 208);
OFF(tsr_host, input_positions, 216);
OFF(tsr_host, kv_cache, 224);
OFF(tsr_host, set_output, 232);
OFF(tsr_host, dequantize_row, 240);
OFF(tsr_host, checkpoint_tensor, 248);
OFF(tsr_host, emit_tensor, 256);
END(tsr_host, emit_tensor, 264);
static_assert(TSR_JSON_ABSENT == 0 && TSR_JSON_NULL == 1 && TSR_JSON_BOOL == 2 &&
              TSR_JSON_INT == 3 && TSR_JSON_REAL == 4 && TSR_JSON_STRING == 5 &&
              TSR_JSON_ARRAY == 6 && TSR_JSON_OBJECT == 7, "JSON kinds are frozen");
static_assert(TSR_PARAM_OPTIONAL == 0x1u, "param flags are frozen");

/* --- tsr_tensor (tensor.h) --------------------------------------------------- */
static_assert(TSR_MAX_DIMS == 4 && TSR_MAX_SRC == 6 && TSR_MAX_OP_PARAMS == 16,
              "tensor array sizes are part of the layout");
OFF(tsr_tensor, struct_size, 0);
OFF(tsr_tensor, dtype, 4);
OFF(tsr_tensor, ne, 8);
OFF(tsr_tensor, nb, 40);
OFF(tsr_tensor, data, 72);
OFF(tsr_tensor, op, 80);
OFF(tsr_tensor, flags, 84);
OFF(tsr_tensor, op_params, 88);
OFF(tsr_tensor, src, 152);
OFF(tsr_tensor, name, 200);
OFF(tsr_tensor, device, 208);
OFF(tsr_tensor, backend, 212);
OFF(tsr_tensor, format_data, 216);
END(tsr_tensor, format_data, 224);
static_assert(TSR_TENSOR_FLAG_PARAM == 0x1u && TSR_TENSOR_FLAG_INPUT == 0x2u &&
              TSR_TENSOR_FLAG_OUTPUT == 0x4u && TSR_TENSOR_FLAG_VIEW == 0x8u &&
              TSR_TENSOR_FLAG_CACHE == 0x10u, "tensor flags are frozen");
/* The op vocabulary: numbers are never reused. */
static_assert(TSR_OP_NONE == 0 && TSR_OP_GET_ROWS == 1 && TSR_OP_RMS_NORM == 2 &&
              TSR_OP_LAYER_NORM == 3 && TSR_OP_MUL_MAT == 4 && TSR_OP_ADD == 5 &&
              TSR_OP_MUL == 6 && TSR_OP_SCALE == 7 && TSR_OP_SILU == 8 && TSR_OP_GELU == 9 &&
              TSR_OP_SWIGLU == 10 && TSR_OP_GEGLU == 11 && TSR_OP_ROPE == 12 &&
              TSR_OP_KV_STORE == 13 && TSR_OP_ATTENTION == 14 && TSR_OP_SOFTMAX == 15 &&
              TSR_OP_CPY == 16 && TSR_OP_TANH == 17 && TSR_OP_RELU == 18 &&
              TSR_OP_SIGMOID == 19 && TSR_OP_MOE_GATE == 20,
              "op numbers are frozen");
static_assert(TSR_OP_COUNT_ >= 21, "ops are only appended");

/* --- weight formats (formats.h) ------------------------------------------- */
static_assert(TSR_DTYPE_Q4_0 == 34 && TSR_DTYPE_Q8_0 == 40 && TSR_DTYPE_Q4_K == 44 &&
              TSR_DTYPE_Q6_K == 46 && TSR_DTYPE_IQ1_M == 61 && TSR_DTYPE_INT_GROUP == 96 &&
              TSR_DTYPE_CODEBOOK4 == 97 && TSR_DTYPE_INT8_ROW == 98, "formats renumbered");
OFF(tsr_fmt_int_group, bits, 4);
OFF(tsr_fmt_int_group, group_size, 16);
OFF(tsr_fmt_int_group, row_bytes, 32);
OFF(tsr_fmt_int_group, scale, 40);
OFF(tsr_fmt_int_group, zero, 48);
END(tsr_fmt_int_group, g_idx, 64);
OFF(tsr_fmt_codebook4, block_size, 8);
OFF(tsr_fmt_codebook4, code, 16);
END(tsr_fmt_codebook4, absmax, 88);
#if TSR_ABI_MINOR >= 2 /* the current headers, not the frozen 1.0 copy */
OFF(tsr_fmt_codebook4, compute_dtype, 88);
OFF(tsr_fmt_int_group, weight_dtype, 64);
#endif
OFF(tsr_fmt_int8_row, threshold, 4);
END(tsr_fmt_int8_row, scale, 16);

/* --- backend.h ------------------------------------------------------------------- */
OFF(tsr_backend_options, struct_size, 0);
OFF(tsr_backend_options, n_threads, 4);
OFF(tsr_backend_options, device, 8);
END(tsr_backend_options, device, 12);
OFF(tsr_device_info, struct_size, 0);
OFF(tsr_device_info, name, 4);
OFF(tsr_device_info, kind, 68);
OFF(tsr_device_info, total_memory, 88);
OFF(tsr_device_info, free_memory, 96);
OFF(tsr_device_info, host_memory, 104);
END(tsr_device_info, host_memory, 108);
OFF(tsr_backend_vtable, struct_size, 0);
OFF(tsr_backend_vtable, create, 8);
OFF(tsr_backend_vtable, destroy, 16);
OFF(tsr_backend_vtable, device_count, 24);
OFF(tsr_backend_vtable, device_info, 32);
OFF(tsr_backend_vtable, supports, 40);
OFF(tsr_backend_vtable, compute, 48);
OFF(tsr_backend_vtable, buffer_alloc, 56);
OFF(tsr_backend_vtable, buffer_free, 64);
OFF(tsr_backend_vtable, copy_to_device, 72);
OFF(tsr_backend_vtable, copy_to_host, 80);
END(tsr_backend_vtable, copy_to_host, 88);

/* --- model.h ---------------------------------------------------------------------- */
OFF(tsr_model_info, struct_size, 0);
OFF(tsr_model_info, n_layer, 4);
OFF(tsr_model_info, n_kv_head, 8);
OFF(tsr_model_info, head_dim, 12);
OFF(tsr_model_info, n_vocab, 16);
OFF(tsr_model_info, n_embd, 20);
OFF(tsr_model_info, n_ctx_train, 24);
END(tsr_model_info, n_ctx_train, 28);
#if TSR_ABI_MINOR >= 1 /* the current headers, not the frozen 1.0 copy */
OFF(tsr_model_info, kv_recompute_at, 28);
#endif
OFF(tsr_batch, struct_size, 0);
OFF(tsr_batch, n_tokens, 4);
OFF(tsr_batch, n_past, 8);
OFF(tsr_batch, logits_all, 12);
END(tsr_batch, logits_all, 16);
OFF(tsr_model_vtable, struct_size, 0);
OFF(tsr_model_vtable, create, 8);
OFF(tsr_model_vtable, destroy, 16);
OFF(tsr_model_vtable, info, 24);
OFF(tsr_model_vtable, declare_params, 32);
OFF(tsr_model_vtable, build, 40);
END(tsr_model_vtable, build, 48);

/* --- quantizer.h ------------------------------------------------------------------ */
OFF(tsr_quantizer_vtable, struct_size, 0);
OFF(tsr_quantizer_vtable, capabilities, 4);
OFF(tsr_quantizer_vtable, create, 8);
OFF(tsr_quantizer_vtable, destroy, 16);
OFF(tsr_quantizer_vtable, skip_module, 24);
OFF(tsr_quantizer_vtable, load_weight, 32);
OFF(tsr_quantizer_vtable, quantize_weight, 40);
OFF(tsr_quantizer_vtable, release_weight, 48);
OFF(tsr_quantizer_vtable, save_weight, 56);
OFF(tsr_quantizer_vtable, save_config, 64);
OFF(tsr_quantizer_vtable, observe_input, 72);
END(tsr_quantizer_vtable, observe_input, 80);
static_assert(TSR_QUANT_REQUIRES_CALIBRATION == 0x1u && TSR_QUANT_SERIALIZABLE == 0x2u &&
              TSR_QUANT_ON_LOAD == 0x4u, "quantizer capabilities are frozen");

/* --- application API structs (tessera.h, libtessera.so.0) -------------------------- */
OFF(tsr_plugin_info, struct_size, 0);
OFF(tsr_plugin_info, name, 8);
OFF(tsr_plugin_info, kind, 16);
OFF(tsr_plugin_info, version, 24);
OFF(tsr_plugin_info, abi, 32);
OFF(tsr_plugin_info, provides, 40);
OFF(tsr_plugin_info, manifest, 48);
OFF(tsr_plugin_info, origin, 56);
OFF(tsr_plugin_info, library, 64);
OFF(tsr_plugin_info, status, 72);
OFF(tsr_plugin_info, available, 80);
OFF(tsr_plugin_info, priority, 84);
END(tsr_plugin_info, priority, 88);
OFF(tsr_load_options, struct_size, 0);
OFF(tsr_load_options, model_path, 8);
OFF(tsr_load_options, config, 16);
OFF(tsr_load_options, progress, 24);
OFF(tsr_load_options, progress_user, 32);
END(tsr_load_options, progress_user, 40);
OFF(tsr_generate_options, struct_size, 0);
OFF(tsr_generate_options, config, 8);
OFF(tsr_generate_options, max_new_tokens, 16);
OFF(tsr_generate_options, logits_positions, 20);
OFF(tsr_generate_options, logits_out, 24);
END(tsr_generate_options, logits_out, 32);

/* --- types.h: status and dtype numbers ---------------------------------------------- */
static_assert(TSR_OK == 0 && TSR_ERR_INVALID_ARG == -1 && TSR_ERR_NOMEM == -2 &&
              TSR_ERR_IO == -3 && TSR_ERR_FORMAT == -4 && TSR_ERR_CONFIG == -5 &&
              TSR_ERR_PLUGIN == -6 && TSR_ERR_ABI == -7 && TSR_ERR_UNSUPPORTED == -8 &&
              TSR_ERR_NOT_FOUND == -9 && TSR_ERR_DEVICE == -10 && TSR_ERR_INTERNAL == -11 &&
              TSR_ERR_CANCELLED == -12, "status numbers are never reused");
static_assert(TSR_DTYPE_F32 == 0 && TSR_DTYPE_F16 == 1 && TSR_DTYPE_BF16 == 2 &&
              TSR_DTYPE_I8 == 3 && TSR_DTYPE_U8 == 4 && TSR_DTYPE_I16 == 5 &&
              TSR_DTYPE_I32 == 6 && TSR_DTYPE_I64 == 7 && TSR_DTYPE_F64 == 8 &&
              TSR_DTYPE_BOOL == 9 && TSR_DTYPE_U16 == 10 && TSR_DTYPE_U32 == 11,
              "dtype numbers are frozen");
static_assert(TSR_LOG_ERROR == 0 && TSR_LOG_WARN == 1 && TSR_LOG_INFO == 2 &&
              TSR_LOG_DEBUG == 3, "log levels are frozen");

/* ISO C wants at least one declaration that is not an assertion. */
int tsr_abi_offsets_checked(void);
int tsr_abi_offsets_checked(void) { return 1; }
