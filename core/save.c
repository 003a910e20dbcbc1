/* core/save.c - saving a loaded model as a Hugging Face folder
 * (tsr_model_save), and the tensor sink behind host->emit_tensor through
 * which quantizer plugins serialize their weights.
 *
 * As transformers' save_pretrained with a quantizer: each weight the
 * quantizer made is written by its save_weight in the method's checkpoint
 * layout (qweight/qzeros/scales, weight + absmax, W_q/scale/zero, ...),
 * every other weight as the checkpoint stores it (dtype and layout, e.g.
 * GPT-2's transposed Conv1D), config.json gains "quantization_config" from
 * save_config.  Weights stream to disk one at a time (core/writers.h). */
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include "ggml_blocks.h"
#include "model.h"
#include "writers.h"

tsr_status tsr__emit_tensor(tsr_tensor_sink *sink, const char *name, uint32_t dtype, int n_dims,
                            const int64_t *shape, const void *data, size_t nbytes)
{
    if (!sink || !sink->w || !name || (!data && nbytes))
        return tsr__error(TSR_ERR_INVALID_ARG, "emit_tensor: invalid arguments");
    if (dtype >= TSR_DTYPE_COUNT_PLAIN_ || !tsr__st_dtype_name(dtype))
        return tsr__error(TSR_ERR_INVALID_ARG, "emit_tensor: tensor '%s' has dtype %s; "
                          "checkpoints store plain dtypes only", name, tsr__dtype_name(dtype));
    return tsr__st_writer_add(sink->w, name, dtype, n_dims, shape, data, nbytes);
}

static tsr_status copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    if (!in)
        return tsr__error(TSR_ERR_IO, "%s: cannot open: %s", from, strerror(errno));
    FILE *out = fopen(to, "wb");
    if (!out) {
        fclose(in);
        return tsr__error(TSR_ERR_IO, "%s: cannot create: %s", to, strerror(errno));
    }
    char buf[65536];
    size_t k;
    tsr_status st = TSR_OK;
    while ((k = fread(buf, 1, sizeof buf, in)) > 0)
        if (fwrite(buf, 1, k, out) != k) {
            st = tsr__error(TSR_ERR_IO, "%s: write failed: %s", to, strerror(errno));
            break;
        }
    if (!st && ferror(in))
        st = tsr__error(TSR_ERR_IO, "%s: read failed", from);
    fclose(in);
    if (fclose(out) != 0 && !st)
        st = tsr__error(TSR_ERR_IO, "%s: write failed: %s", to, strerror(errno));
    return st;
}

/* A weight as stored in the checkpoint; GGUF blocks are dequantized to F32. */
static tsr_status save_stored(tsr__st_writer *w, const tsr__ckpt_tensor *ct)
{
    if (ct->dtype < TSR_DTYPE_COUNT_PLAIN_)
        return tsr__st_writer_add(w, ct->name, ct->dtype, ct->n_dims, ct->shape, ct->data,
                                  ct->nbytes);
    int64_t count = 1;
    for (int d = 0; d < ct->n_dims; d++)
        count *= ct->shape[d];
    float *f = malloc((size_t)count * sizeof(float));
    if (!f)
        return tsr__error(TSR_ERR_NOMEM, "out of memory converting '%s'", ct->name);
    tsr_status st = ct->dtype >= TSR_DTYPE_GGML_BASE
                        ? tsr__ggml_dequantize(ct->dtype - TSR_DTYPE_GGML_BASE, ct->data, f, count)
                        : tsr__error(TSR_ERR_UNSUPPORTED, "tensor '%s': format %s cannot be saved",
                                     ct->name, tsr__dtype_name(ct->dtype));
    if (!st)
        st = tsr__st_writer_add(w, ct->name, TSR_DTYPE_F32, ct->n_dims, ct->shape, f,
                                (size_t)count * sizeof(float));
    free(f);
    return st;
}

static tsr_status write_config(const tsr_model *m, const char *dir)
{
    json_t *cfg = json_deep_copy((json_t *)m->config);
    if (!cfg)
        return tsr__error(TSR_ERR_NOMEM, "out of memory");
    tsr_status st = TSR_OK;
    if (m->qvt) {
        char *text = NULL;
        if (!m->qvt->save_config)
            st = tsr__error(TSR_ERR_UNSUPPORTED, "the %s quantizer cannot write its "
                            "quantization_config", m->qdesc->name);
        else if ((st = m->qvt->save_config(m->qstate, &text)))
            st = tsr__error_prefix(st, "%s quantizer: save_config", m->qdesc->name);
        if (!st) {
            json_error_t je;
            json_t *q = json_loads(text, 0, &je);
            if (!json_is_object(q)) {
                json_decref(q);
                st = tsr__error(TSR_ERR_PLUGIN, "the %s quantizer's save_config gave invalid "
                                "JSON (%d:%d: %s)", m->qdesc->name, je.line, je.column, je.text);
            } else {
                json_object_set_new(cfg, "quantization_config", q);
            }
        }
        tsr__free(text);
    }
    char *path = tsr__path_join(dir, "config.json");
    if (!st && path) {
        if (json_dump_file(cfg, path, JSON_INDENT(2) | JSON_SORT_KEYS) != 0)
            st = tsr__error(TSR_ERR_IO, "%s: cannot write", path);
    } else if (!st) {
        st = tsr__error(TSR_ERR_NOMEM, "out of memory");
    }
    free(path);
    json_decref(cfg);
    return st;
}

static tsr_status copy_side_files(const tsr_model *m, const char *dir)
{
    static const char *const files[] = {
        "generation_config.json", "tokenizer.json", "tokenizer_config.json",
        "special_tokens_map.json", "tokenizer.model", "vocab.json", "merges.txt",
        "added_tokens.json", "chat_template.jinja",
    };
    tsr_status st = TSR_OK;
    for (size_t i = 0; i < sizeof files / sizeof files[0] && !st; i++) {
        char *from = tsr__path_join(m->dir, files[i]), *to = tsr__path_join(dir, files[i]);
        if (!from || !to)
            st = tsr__error(TSR_ERR_NOMEM, "out of memory");
        else if (tsr__file_exists(from))
            st = copy_file(from, to);
        free(from);
        free(to);
    }
    return st;
}

TSR_API tsr_status tsr_model_save(const tsr_model *m, const char *dir, const tsr_save_options *opt)
{
    if (!m || !dir || (opt && opt->struct_size < offsetof(tsr_save_options, progress)))
        return tsr__error(TSR_ERR_INVALID_ARG, "tsr_model_save: invalid arguments");
    char a[PATH_MAX], b[PATH_MAX];
    if (realpath(m->dir, a) && realpath(dir, b) && !strcmp(a, b))
        return tsr__error(TSR_ERR_INVALID_ARG, "%s: cannot save a model over the folder it was "
                          "loaded from", dir);
    if (m->qvt && !(m->qvt->capabilities & TSR_QUANT_SERIALIZABLE && m->qvt->save_weight))
        return tsr__error(TSR_ERR_UNSUPPORTED, "the %s quantizer cannot serialize its weights",
                          m->qdesc->name);
    uint64_t shard = opt && opt->struct_size >= offsetof(tsr_save_options, progress) ? opt->max_shard_size : 0;
    tsr_save_progress_fn progress =
        opt && opt->struct_size >= offsetof(tsr_save_options, progress_user) ? opt->progress : NULL;
    tsr__st_writer *w;
    tsr_status st = tsr__st_writer_create(dir, shard, &w);
    if (st)
        return st;
    size_t n = m->env.n_params;
    for (size_t i = 0; i < n && !st; i++) {
        const tsr__param *p = &m->env.params[i];
        if (p->quantized) {
            char module[512];
            size_t nl = strlen(p->name);
            snprintf(module, sizeof module, "%.*s", (int)(nl > 7 ? nl - 7 : nl), p->name);
            tsr_tensor_sink sink = {w, module};
            st = m->qvt->save_weight(m->qstate, module, &p->t, &sink);
            if (st)
                st = tsr__error_prefix(st, "%s quantizer: saving '%s'", m->qdesc->name, module);
        } else {
            tsr__ckpt_tensor *ct = tsr__checkpoint_find(m->ckpt, p->name);
            if (ct)
                st = save_stored(w, ct);
        }
        if (!st && progress && progress((float)(i + 1) / (float)n, p->name, opt->progress_user))
            st = tsr__error(TSR_ERR_CANCELLED, "saving to %s was cancelled", dir);
    }
    if (!st && tsr__st_writer_count(w) == 0)
        st = tsr__error(TSR_ERR_INTERNAL, "%s: the model has no weights to save", m->dir);
    if (!st)
        st = tsr__st_writer_finish(w);
    tsr__st_writer_destroy(w);
    if (!st)
        st = write_config(m, dir);
    if (!st)
        st = copy_side_files(m, dir);
    return st;
}
