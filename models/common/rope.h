/* models/common/rope.h - RoPE inverse frequencies as transformers'
 * modeling_rope_utils computes them, for each rope_type.  Shared by the
 * model plugins (compiled into each; not an ABI). */
#ifndef TESSERA_MODELS_ROPE_H
#define TESSERA_MODELS_ROPE_H
#include <tessera/plugin/plugin.h>

typedef enum { ROPE_DEFAULT, ROPE_LINEAR, ROPE_DYNAMIC, ROPE_LLAMA3, ROPE_YARN, ROPE_LONGROPE } rope_kind;

#define ROPE_MAX_HALF 512

typedef struct rope_cfg {
    rope_kind kind;
    int dim;                  /* rotated dims: head_dim * partial_rotary_factor */
    double base;              /* rope_theta */
    double factor;
    double low_freq_factor, high_freq_factor;   /* llama3 */
    double beta_fast, beta_slow, mscale, mscale_all_dim; /* yarn */
    double attention_factor;  /* yarn, longrope; 0 = derive */
    int truncate;             /* yarn */
    int64_t original_max_pos; /* original_max_position_embeddings */
    int64_t max_pos;          /* max_position_embeddings */
    float short_factor[ROPE_MAX_HALF], long_factor[ROPE_MAX_HALF]; /* longrope, [dim/2] */
} rope_cfg;

/* Parse config.json's RoPE settings in either spelling: transformers 5's
 * `rope_parameters` {rope_type, rope_theta, partial_rotary_factor, ...} or
 * the older top-level rope_theta / partial_rotary_factor + `rope_scaling`.
 * Returns TSR_OK or an error set through the host. */
tsr_status rope_parse(const tsr_host *h, const tsr_json *cfg, int head_dim, rope_cfg *out);
/* inv_freq[dim/2] for a forward step whose largest position is seq_len - 1
 * (dynamic NTK and longrope depend on it); *attention_factor gets the
 * cos/sin scale (1 unless yarn or longrope). */
void rope_inv_freq(const rope_cfg *r, int64_t seq_len, float *inv_freq, float *attention_factor);
#endif
