/* models/llama/rope.h - RoPE inverse frequencies as transformers'
 * modeling_rope_utils computes them, for each rope_type. */
#ifndef TESSERA_LLAMA_ROPE_H
#define TESSERA_LLAMA_ROPE_H
#include <tessera/plugin/plugin.h>

typedef enum { ROPE_DEFAULT, ROPE_LINEAR, ROPE_DYNAMIC, ROPE_LLAMA3, ROPE_YARN } rope_kind;

typedef struct rope_cfg {
    rope_kind kind;
    int dim;                  /* rotated dims: head_dim * partial_rotary_factor */
    double base;              /* rope_theta */
    double factor;
    double low_freq_factor, high_freq_factor;   /* llama3 */
    double beta_fast, beta_slow, mscale, mscale_all_dim; /* yarn */
    double attention_factor;  /* yarn; 0 = derive */
    int truncate;             /* yarn */
    int64_t original_max_pos; /* original_max_position_embeddings */
    int64_t max_pos;          /* max_position_embeddings */
} rope_cfg;

/* Parse config.json's rope_theta / rope_scaling / partial_rotary_factor.
 * Returns TSR_OK or an error set through the host. */
tsr_status rope_parse(const tsr_host *h, const tsr_json *cfg, int head_dim, rope_cfg *out);
/* inv_freq[dim/2] for a sequence of seq_len positions (dynamic NTK depends on
 * it); *attention_factor gets the cos/sin scale (1 unless yarn). */
void rope_inv_freq(const rope_cfg *r, int64_t seq_len, float *inv_freq, float *attention_factor);
#endif
