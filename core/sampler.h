/* core/sampler.h - next-token choice as transformers' generate() makes it. */
#ifndef TESSERA_CORE_SAMPLER_H
#define TESSERA_CORE_SAMPLER_H
#include <stdbool.h>
#include <stdint.h>
#include "internal.h"

typedef struct tsr__sampling {
    bool do_sample;
    float temperature;        /* TemperatureLogitsWarper                   */
    int top_k;                /* TopKLogitsWarper, 0 = off                 */
    float top_p;              /* TopPLogitsWarper, 1 = off                 */
    float min_p;              /* MinPLogitsWarper, 0 = off                 */
    float repetition_penalty; /* RepetitionPenaltyLogitsProcessor, 1 = off */
    uint64_t seed;
} tsr__sampling;

typedef struct tsr__sampler tsr__sampler;
tsr_status tsr__sampler_create(const tsr__sampling *s, int n_vocab, tsr__sampler **out);
void tsr__sampler_destroy(tsr__sampler *s);
/* Choose the next token from logits [n_vocab] (modified in place), given
 * the ids seen so far (prompt + generated) for the repetition penalty. */
int32_t tsr__sampler_next(tsr__sampler *s, float *logits, const int32_t *seen, size_t n_seen);
#endif
