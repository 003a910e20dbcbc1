/* tests/unit/test_model_errors.c - a model folder that does not fit its
 * config fails with a sentence naming the file and the tensor or key:
 * a tensor the model needs but the files lack, one the files have that no
 * module claims, a shape that disagrees with config.json, an unknown or
 * missing model_type, malformed config.json; and the run goes on for a good
 * folder afterwards. */
#include <jansson.h>
#include <stdlib.h>
#include <unistd.h>
#include "internal.h"
#include "tsr_test.h"

static char dir[256];

/* Write dir/model.safetensors from stories260K's tensors, leaving out
 * `skip` and adding `extra` (a 4-float tensor) if not NULL. */
static void write_weights(const char *skip, const char *extra)
{
    tsr_checkpoint *ck;
    CHECK(tsr__checkpoint_open_file("fixtures/stories260K-hf/model.safetensors", &ck) == TSR_OK);
    json_t *hdr = json_object();
    size_t off = 0;
    for (size_t i = 0; i < tsr__checkpoint_count(ck); i++) {
        tsr__ckpt_tensor *t = tsr__checkpoint_at(ck, i);
        if (skip && !strcmp(t->name, skip))
            continue;
        json_t *sh = json_array();
        for (int d = 0; d < t->n_dims; d++)
            json_array_append_new(sh, json_integer(t->shape[d]));
        json_object_set_new(hdr, t->name, json_pack("{s:s, s:o, s:[I,I]}", "dtype", "F32", "shape", sh,
                                                   "data_offsets", (json_int_t)off,
                                                   (json_int_t)(off + t->nbytes)));
        off += t->nbytes;
    }
    if (extra) {
        json_object_set_new(hdr, extra, json_pack("{s:s, s:[i], s:[I,I]}", "dtype", "F32", "shape", 4,
                                                 "data_offsets", (json_int_t)off, (json_int_t)(off + 16)));
    }
    char *h = json_dumps(hdr, JSON_COMPACT);
    char path[300];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *f = fopen(path, "wb");
    uint64_t hl = strlen(h);
    fwrite(&hl, 8, 1, f);
    fwrite(h, 1, hl, f);
    for (size_t i = 0; i < tsr__checkpoint_count(ck); i++) {
        tsr__ckpt_tensor *t = tsr__checkpoint_at(ck, i);
        if (!(skip && !strcmp(t->name, skip)))
            fwrite(t->data, 1, t->nbytes, f);
    }
    if (extra) {
        float z[4] = {0};
        fwrite(z, 4, 4, f);
    }
    fclose(f);
    free(h);
    json_decref(hdr);
    tsr__checkpoint_close(ck);
}

static void write_config(const char *key, json_t *value)
{
    json_error_t e;
    json_t *c = json_load_file("fixtures/stories260K-hf/config.json", 0, &e);
    if (key)
        value ? json_object_set_new(c, key, value) : json_object_del(c, key);
    char path[300];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_dump_file(c, path, JSON_INDENT(2));
    json_decref(c);
}

static tsr_status load(void)
{
    tsr_load_options lo = TSR_LOAD_OPTIONS_INIT;
    lo.model_path = dir;
    tsr_model *m = NULL;
    tsr_status st = tsr_model_load(&lo, &m);
    tsr_model_destroy(m);
    if (getenv("TSR_TEST_VERBOSE"))
        fprintf(stderr, "  -> %s\n", tsr_last_error());
    return st;
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/tsr-model-errors-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);

    /* a good copy loads */
    write_config(NULL, NULL);
    write_weights(NULL, NULL);
    CHECK(load() == TSR_OK);

    /* a tensor the model needs is missing */
    write_weights("model.layers.3.mlp.up_proj.weight", NULL);
    CHECK(load() == TSR_ERR_NOT_FOUND);
    CHECK_CONTAINS(tsr_last_error(), "model.layers.3.mlp.up_proj.weight");
    CHECK_CONTAINS(tsr_last_error(), dir);

    /* a tensor no module claims */
    write_weights(NULL, "model.layers.2.mlp.surprise.weight");
    CHECK(load() == TSR_ERR_FORMAT);
    CHECK_CONTAINS(tsr_last_error(), "model.layers.2.mlp.surprise.weight");
    CHECK_CONTAINS(tsr_last_error(), "model.safetensors");
    CHECK_CONTAINS(tsr_last_error(), "not used by any module");

    /* shapes disagree with config.json */
    write_weights(NULL, NULL);
    write_config("intermediate_size", json_integer(170));
    CHECK(load() == TSR_ERR_FORMAT);
    CHECK_CONTAINS(tsr_last_error(), "model.layers.0.mlp.gate_proj.weight");
    CHECK_CONTAINS(tsr_last_error(), "[172, 64]");
    CHECK_CONTAINS(tsr_last_error(), "[170, 64]");

    /* unknown and missing model_type */
    write_config("model_type", json_string("llama-but-not-really"));
    CHECK(load() != TSR_OK);
    CHECK_CONTAINS(tsr_last_error(), "llama-but-not-really");
    CHECK_CONTAINS(tsr_last_error(), "config.json");
    write_config("model_type", NULL);
    CHECK(load() == TSR_ERR_FORMAT);
    CHECK_CONTAINS(tsr_last_error(), "model_type");

    /* a config value that cannot be right */
    write_config("num_key_value_heads", json_integer(3));
    CHECK(load() == TSR_ERR_FORMAT);
    CHECK_CONTAINS(tsr_last_error(), "num_key_value_heads");

    /* malformed config.json: line and column */
    char path[300];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\n  \"model_type\": \"llama\",\n  \"hidden_size\": 64,,\n}\n", f);
    fclose(f);
    CHECK(load() == TSR_ERR_FORMAT);
    CHECK_CONTAINS(tsr_last_error(), "config.json:3:");

    /* no weights at all */
    write_config(NULL, NULL);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    CHECK(load() == TSR_ERR_NOT_FOUND);
    CHECK_CONTAINS(tsr_last_error(), dir);

    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    CHECK(load() != TSR_OK);
    CHECK_CONTAINS(tsr_last_error(), "config.json");
    rmdir(dir);
    return tsr_test_report("test_model_errors");
}
