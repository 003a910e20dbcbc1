/* tests/unit/test_writers.c - the safetensors and GGUF writers, read back by
 * the project's validating readers (core/safetensors.c, core/gguf.c) and
 * checked byte for byte against the safetensors library's own output
 * (fixtures/stories260K-hf/model.safetensors, written by safetensors). */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "ggml_blocks.h"
#include "tsr_test.h"
#include "writers.h"

static char tmpdir[256];

static char *tpath(const char *name)
{
    static char buf[512];
    snprintf(buf, sizeof buf, "%s/%s", tmpdir, name);
    return buf;
}

static char *slurp(const char *path, size_t *n)
{
    char *d = NULL;
    *n = 0;
    if (tsr__read_file(path, &d, n))
        return NULL;
    return d;
}

/* Re-write every tensor of the stories260K checkpoint (in a shuffled
 * order): the file must equal the one the safetensors library wrote. */
static void test_safetensors_matches_library(void)
{
    tsr_checkpoint *ck;
    CHECK(tsr__checkpoint_open("fixtures/stories260K-hf", &ck) == TSR_OK);
    char dir[512];
    snprintf(dir, sizeof dir, "%s", tpath("st1"));
    tsr__st_writer *w;
    CHECK(tsr__st_writer_create(dir, 0, &w) == TSR_OK);
    size_t n = tsr__checkpoint_count(ck);
    for (size_t k = 0; k < n; k++) {
        tsr__ckpt_tensor *t = tsr__checkpoint_at(ck, (k * 7) % n); /* 7 is prime to 47/48 */
        CHECK(tsr__st_writer_add(w, t->name, t->dtype, t->n_dims, t->shape, t->data, t->nbytes) == TSR_OK);
    }
    /* a duplicate and a size mismatch are refused */
    tsr__ckpt_tensor *t0 = tsr__checkpoint_at(ck, 0);
    CHECK(tsr__st_writer_add(w, t0->name, t0->dtype, t0->n_dims, t0->shape, t0->data, t0->nbytes) != TSR_OK);
    CHECK(tsr__st_writer_add(w, "x", TSR_DTYPE_F32, 1, (int64_t[]){3}, t0->data, 8) != TSR_OK);
    CHECK(tsr__st_writer_finish(w) == TSR_OK);
    tsr__st_writer_destroy(w);
    size_t na, nb;
    char *a = slurp(tpath("st1/model.safetensors"), &na);
    char *b = slurp("fixtures/stories260K-hf/model.safetensors", &nb);
    CHECK(a && b && na == nb && memcmp(a, b, na) == 0);
    free(a);
    free(b);
    /* no temporary file is left behind */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "test $(ls -A %s | wc -l) -eq 1", dir);
    CHECK(system(cmd) == 0);
    tsr__checkpoint_close(ck);
}

/* Mixed dtypes and sharding: layout by dtype rank then name, shards in
 * insertion order with an index, readable by the checkpoint reader. */
static void test_safetensors_shards(void)
{
    char dir[512];
    snprintf(dir, sizeof dir, "%s", tpath("st2"));
    tsr__st_writer *w;
    CHECK(tsr__st_writer_create(dir, 100, &w) == TSR_OK);
    float f[20];
    uint16_t h[20];
    int64_t l[4] = {1, -2, 3, -4};
    for (int i = 0; i < 20; i++) {
        f[i] = (float)i * 0.5f;
        h[i] = tsr__f32_to_bf16((float)i);
    }
    CHECK(tsr__st_writer_add(w, "b.weight", TSR_DTYPE_BF16, 2, (int64_t[]){4, 5}, h, 40) == TSR_OK);
    CHECK(tsr__st_writer_add(w, "a.weight", TSR_DTYPE_F32, 2, (int64_t[]){5, 4}, f, 80) == TSR_OK);
    CHECK(tsr__st_writer_add(w, "c.idx", TSR_DTYPE_I64, 1, (int64_t[]){4}, l, 32) == TSR_OK);
    CHECK(tsr__st_writer_add(w, "d.scalar", TSR_DTYPE_F32, 0, NULL, f + 3, 4) == TSR_OK);
    CHECK(tsr__st_writer_finish(w) == TSR_OK);
    tsr__st_writer_destroy(w);
    /* 40 | 80 (40 + 80 > 100) | 32 + 4 */
    size_t n;
    char *idx = slurp(tpath("st2/model.safetensors.index.json"), &n);
    CHECK(idx != NULL);
    if (idx) {
        CHECK_CONTAINS(idx, "\"total_size\": 156");
        CHECK_CONTAINS(idx, "\"a.weight\": \"model-00002-of-00003.safetensors\",\n"
                            "    \"b.weight\": \"model-00001-of-00003.safetensors\",\n"
                            "    \"c.idx\": \"model-00003-of-00003.safetensors\"");
    }
    free(idx);
    char *s3 = slurp(tpath("st2/model-00003-of-00003.safetensors"), &n);
    CHECK(s3 && n >= 8);
    if (s3) {
        /* I64 before F32 (the library's Dtype order, largest first) */
        CHECK_CONTAINS(s3 + 8, "{\"c.idx\":{\"dtype\":\"I64\",\"shape\":[4],\"data_offsets\":[0,32]},"
                               "\"d.scalar\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[32,36]},"
                               "\"__metadata__\":{\"format\":\"pt\"}}");
        uint64_t hl;
        memcpy(&hl, s3, 8);
        CHECK(hl % 8 == 0 && s3[8 + hl - 1] == ' ');
    }
    free(s3);
    tsr_checkpoint *ck;
    CHECK(tsr__checkpoint_open(dir, &ck) == TSR_OK);
    if (ck) {
        CHECK(tsr__checkpoint_count(ck) == 4);
        tsr__ckpt_tensor *a = tsr__checkpoint_find(ck, "a.weight");
        CHECK(a && a->dtype == TSR_DTYPE_F32 && a->n_dims == 2 && a->shape[0] == 5 &&
              memcmp(a->data, f, 80) == 0);
        tsr__ckpt_tensor *b = tsr__checkpoint_find(ck, "b.weight");
        CHECK(b && b->dtype == TSR_DTYPE_BF16 && memcmp(b->data, h, 40) == 0);
        tsr__ckpt_tensor *c = tsr__checkpoint_find(ck, "c.idx");
        CHECK(c && memcmp(c->data, l, 32) == 0);
        tsr__checkpoint_close(ck);
    }
}

/* Every metadata value type, arrays, alignment and tensors, read back. */
static void test_gguf_writer(void)
{
    char *path = tpath("w.gguf");
    tsr__gguf_writer *w;
    CHECK(tsr__gguf_writer_create(path, &w) == TSR_OK);
    uint8_t u8 = 200;
    int8_t i8 = -100;
    uint16_t u16 = 60000;
    int16_t i16 = -30000;
    uint64_t u64 = 1ull << 40;
    int64_t i64 = -(1ll << 40);
    double f64 = 0.1;
    CHECK(tsr__gguf_writer_kv(w, "t.u8", TSR_GGUF_UINT8, &u8) == TSR_OK);
    CHECK(tsr__gguf_writer_kv(w, "t.i8", TSR_GGUF_INT8, &i8) == TSR_OK);
    CHECK(tsr__gguf_writer_kv(w, "t.u16", TSR_GGUF_UINT16, &u16) == TSR_OK);
    CHECK(tsr__gguf_writer_kv(w, "t.i16", TSR_GGUF_INT16, &i16) == TSR_OK);
    CHECK(tsr__gguf_writer_kv_u32(w, "t.u32", 4000000000u) == TSR_OK);
    CHECK(tsr__gguf_writer_kv_i32(w, "t.i32", -5) == TSR_OK);
    CHECK(tsr__gguf_writer_kv_f32(w, "t.f32", 1.5f) == TSR_OK);
    CHECK(tsr__gguf_writer_kv_bool(w, "t.bool", true) == TSR_OK);
    CHECK(tsr__gguf_writer_kv_str(w, "t.str", "h\xc3\xa9llo") == TSR_OK);
    CHECK(tsr__gguf_writer_kv(w, "t.u64", TSR_GGUF_UINT64, &u64) == TSR_OK);
    CHECK(tsr__gguf_writer_kv(w, "t.i64", TSR_GGUF_INT64, &i64) == TSR_OK);
    CHECK(tsr__gguf_writer_kv(w, "t.f64", TSR_GGUF_FLOAT64, &f64) == TSR_OK);
    CHECK(tsr__gguf_writer_kv_str(w, "t.str", "again") != TSR_OK); /* duplicate key */
    const char *strs[] = {"a", "", "\xe2\x96\x81the"};
    float fl[3] = {0.0f, -0.0f, -2.5f};
    int32_t in[3] = {1, 3, 6};
    CHECK(tsr__gguf_writer_kv_arr_str(w, "t.astr", strs, NULL, 3) == TSR_OK);
    CHECK(tsr__gguf_writer_kv_arr(w, "t.af32", TSR_GGUF_FLOAT32, fl, 3) == TSR_OK);
    CHECK(tsr__gguf_writer_kv_arr(w, "t.ai32", TSR_GGUF_INT32, in, 3) == TSR_OK);
    CHECK(tsr__gguf_writer_kv_u32(w, "general.alignment", 64) == TSR_OK);
    float x[3 * 32], y[32];
    for (int i = 0; i < 96; i++)
        x[i] = (float)(i % 17) - 8.0f;
    for (int i = 0; i < 32; i++)
        y[i] = (float)i;
    uint8_t q[3 * 34];
    tsr__quantize_row_q8_0(x, q, 96);
    CHECK(tsr__gguf_writer_tensor(w, "q", TSR_GGML_Q8_0, 2, (int64_t[]){32, 3}) == TSR_OK);
    CHECK(tsr__gguf_writer_tensor(w, "v", TSR_GGML_F32, 1, (int64_t[]){5}) == TSR_OK);
    CHECK(tsr__gguf_writer_tensor(w, "y", TSR_GGML_F32, 1, (int64_t[]){32}) == TSR_OK);
    CHECK(tsr__gguf_writer_tensor(w, "bad", TSR_GGML_Q4_0, 1, (int64_t[]){33}) != TSR_OK);
    CHECK(tsr__gguf_writer_begin_data(w) == TSR_OK);
    CHECK(tsr__gguf_writer_data(w, q, 34, false) == TSR_OK); /* in pieces */
    CHECK(tsr__gguf_writer_data(w, q + 34, 68, true) == TSR_OK);
    CHECK(tsr__gguf_writer_data(w, y, 20, true) == TSR_OK);
    CHECK(tsr__gguf_writer_finish(w) != TSR_OK); /* "y" not written */
    CHECK(tsr__gguf_writer_data(w, y, 128, true) == TSR_OK || 1);
    tsr__gguf_writer_destroy(w);

    /* again, complete */
    CHECK(tsr__gguf_writer_create(path, &w) == TSR_OK);
    CHECK(tsr__gguf_writer_kv_str(w, "t.str", "h\xc3\xa9llo") == TSR_OK);
    CHECK(tsr__gguf_writer_kv_arr_str(w, "t.astr", strs, NULL, 3) == TSR_OK);
    CHECK(tsr__gguf_writer_kv_arr(w, "t.af32", TSR_GGUF_FLOAT32, fl, 3) == TSR_OK);
    CHECK(tsr__gguf_writer_kv_arr(w, "t.ai32", TSR_GGUF_INT32, in, 3) == TSR_OK);
    CHECK(tsr__gguf_writer_kv(w, "t.u8", TSR_GGUF_UINT8, &u8) == TSR_OK);
    CHECK(tsr__gguf_writer_kv(w, "t.i8", TSR_GGUF_INT8, &i8) == TSR_OK);
    CHECK(tsr__gguf_writer_kv(w, "t.u16", TSR_GGUF_UINT16, &u16) == TSR_OK);
    CHECK(tsr__gguf_writer_kv(w, "t.i16", TSR_GGUF_INT16, &i16) == TSR_OK);
    CHECK(tsr__gguf_writer_kv_u32(w, "t.u32", 4000000000u) == TSR_OK);
    CHECK(tsr__gguf_writer_kv_i32(w, "t.i32", -5) == TSR_OK);
    CHECK(tsr__gguf_writer_kv_f32(w, "t.f32", 1.5f) == TSR_OK);
    CHECK(tsr__gguf_writer_kv_bool(w, "t.bool", true) == TSR_OK);
    CHECK(tsr__gguf_writer_kv(w, "t.u64", TSR_GGUF_UINT64, &u64) == TSR_OK);
    CHECK(tsr__gguf_writer_kv(w, "t.i64", TSR_GGUF_INT64, &i64) == TSR_OK);
    CHECK(tsr__gguf_writer_kv(w, "t.f64", TSR_GGUF_FLOAT64, &f64) == TSR_OK);
    CHECK(tsr__gguf_writer_kv_u32(w, "general.alignment", 64) == TSR_OK);
    CHECK(tsr__gguf_writer_tensor(w, "q", TSR_GGML_Q8_0, 2, (int64_t[]){32, 3}) == TSR_OK);
    CHECK(tsr__gguf_writer_tensor(w, "y", TSR_GGML_F32, 1, (int64_t[]){32}) == TSR_OK);
    CHECK(tsr__gguf_writer_begin_data(w) == TSR_OK);
    CHECK(tsr__gguf_writer_data(w, q, sizeof q, true) == TSR_OK);
    CHECK(tsr__gguf_writer_data(w, y, sizeof y, true) == TSR_OK);
    CHECK(tsr__gguf_writer_finish(w) == TSR_OK);
    tsr__gguf_writer_destroy(w);

    tsr__gguf *g;
    CHECK(tsr__gguf_open(path, &g) == TSR_OK);
    if (!g)
        return;
    CHECK(tsr__gguf_version(g) == 3 && tsr__gguf_alignment(g) == 64);
    CHECK(tsr__gguf_data_offset(g) % 64 == 0);
    int64_t v;
    uint64_t uv;
    double d;
    bool b;
    CHECK(!tsr__gguf_get_int(g, "t.u8", &v) && v == 200);
    CHECK(!tsr__gguf_get_int(g, "t.i8", &v) && v == -100);
    CHECK(!tsr__gguf_get_int(g, "t.u16", &v) && v == 60000);
    CHECK(!tsr__gguf_get_int(g, "t.i16", &v) && v == -30000);
    CHECK(!tsr__gguf_get_int(g, "t.u32", &v) && v == 4000000000ll);
    CHECK(!tsr__gguf_get_int(g, "t.i32", &v) && v == -5);
    CHECK(!tsr__gguf_get_uint(g, "t.u64", &uv) && uv == 1ull << 40);
    CHECK(!tsr__gguf_get_int(g, "t.i64", &v) && v == -(1ll << 40));
    CHECK(!tsr__gguf_get_float(g, "t.f32", &d) && d == 1.5);
    CHECK(!tsr__gguf_get_float(g, "t.f64", &d) && d == 0.1);
    CHECK(!tsr__gguf_get_bool(g, "t.bool", &b) && b);
    CHECK(tsr__gguf_kv_value(g, 0)->type == TSR_GGUF_STRING);
    CHECK(tsr__gguf_str_eq(g, "t.str", "h\xc3\xa9llo"));
    const tsr__gguf_value *arr;
    CHECK(!tsr__gguf_get_arr(g, "t.astr", &arr) && arr->len == 3 && arr->elem_type == TSR_GGUF_STRING);
    for (uint64_t i = 0; arr && i < 3; i++) {
        const char *s;
        size_t l;
        CHECK(!tsr__gguf_arr_str(arr, i, &s, &l) && l == strlen(strs[i]) && !memcmp(s, strs[i], l));
    }
    CHECK(!tsr__gguf_get_arr(g, "t.af32", &arr) && arr->elem_type == TSR_GGUF_FLOAT32 &&
          memcmp(arr->data, fl, sizeof fl) == 0);
    CHECK(!tsr__gguf_get_arr(g, "t.ai32", &arr) && arr->elem_type == TSR_GGUF_INT32 &&
          memcmp(arr->data, in, sizeof in) == 0);
    const tsr__gguf_tensor *tq = tsr__gguf_find_tensor(g, "q"), *ty = tsr__gguf_find_tensor(g, "y");
    CHECK(tq && tq->ggml_type == TSR_GGML_Q8_0 && tq->ne[0] == 32 && tq->ne[1] == 3 &&
          tq->nbytes == sizeof q && memcmp(tq->data, q, sizeof q) == 0);
    CHECK(ty && ty->offset % 64 == 0 && memcmp(ty->data, y, sizeof y) == 0);
    tsr__gguf_close(g);
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/tessera-test-writers-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    test_safetensors_matches_library();
    test_safetensors_shards();
    test_gguf_writer();
    char cmd[400];
    snprintf(cmd, sizeof cmd, "%s %s", getenv("KEEP") ? "echo" : "rm -rf", tmpdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tmpdir);
    return tsr_test_report("writers");
}
