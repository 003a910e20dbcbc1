/* tests/unit/test_safetensors.c - the safetensors checkpoint reader.
 *
 * Positive cases read the committed fixtures (stories260K as one file and as
 * three shards made by the reference `safetensors` package); negative cases
 * write small malformed files into a mkdtemp() folder, one per rule of the
 * format (https://github.com/huggingface/safetensors, "Format"), and check
 * that the error names the file and the tensor.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "internal.h"
#include "tsr_test.h"

static char tmpdir[] = "/tmp/tsr-safetensors-XXXXXX";

/* ---- helpers ------------------------------------------------------------------- */

static char *tmp_path(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/%s", tmpdir, name);
    return buf[k];
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL);
    if (!f)
        return;
    CHECK(fwrite(p, 1, n, f) == n);
    fclose(f);
}

/* A safetensors file: 8-byte little-endian header length, the header as
 * given, then data_len bytes 0, 1, 2, ... (mod 256). */
static const char *write_st(const char *dir, const char *name, const char *header,
                            size_t data_len)
{
    static char path[512];
    size_t hl = strlen(header);
    unsigned char *buf = malloc(8 + hl + data_len);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    for (size_t i = 0; i < data_len; i++)
        buf[8 + hl + i] = (unsigned char)i;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    write_bytes(path, buf, 8 + hl + data_len);
    free(buf);
    return path;
}

static void write_text(const char *path, const char *text)
{
    write_bytes(path, text, strlen(text));
}

/* Opening `path` fails with `want`; the message names the file and, when
 * given, the tensor and another fragment. */
static void expect_fail(const char *path, tsr_status want, const char *tensor, const char *frag)
{
    tsr_checkpoint *ck = (tsr_checkpoint *)1;
    tsr_status st = tsr__checkpoint_open_file(path, &ck);
    if (getenv("TSR_TEST_VERBOSE"))
        fprintf(stderr, "  %s\n", tsr_last_error());
    CHECK_MSG(st == want, "%s: status %d, want %d (%s)", path, st, want, tsr_last_error());
    CHECK(ck == NULL);
    CHECK_CONTAINS(tsr_last_error(), path);
    if (tensor) {
        char quoted[256];
        snprintf(quoted, sizeof quoted, "\"%s\"", tensor);
        CHECK_CONTAINS(tsr_last_error(), quoted);
    }
    if (frag)
        CHECK_CONTAINS(tsr_last_error(), frag);
    if (st == TSR_OK)
        tsr__checkpoint_close(ck);
}

/* A malformed header over data_len bytes of data, in a file of its own. */
static void bad_header(const char *file, const char *header, size_t data_len,
                       tsr_status want, const char *tensor, const char *frag)
{
    expect_fail(write_st(tmpdir, file, header, data_len), want, tensor, frag);
}

static int rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(p);
}

/* ---- stories260K: one file ------------------------------------------------------- */

static uint32_t f32_bits_at(const tsr__ckpt_tensor *t, size_t i)
{
    uint32_t v;
    memcpy(&v, (const char *)t->data + 4 * i, 4);
    return v;
}

static void test_stories_single(void)
{
    tsr_checkpoint *ck;
    tsr_status st = tsr__checkpoint_open("fixtures/stories260K-hf", &ck);
    CHECK_MSG(st == TSR_OK, "%s", tsr_last_error());
    if (st)
        return;
    CHECK(tsr__checkpoint_count(ck) == 47);
    tsr__ckpt_tensor *e = tsr__checkpoint_find(ck, "model.embed_tokens.weight");
    CHECK(e && e->dtype == TSR_DTYPE_F32 && e->n_dims == 2);
    CHECK(e && e->shape[0] == 512 && e->shape[1] == 64 && e->nbytes == 512 * 64 * 4);
    CHECK(e && strstr(e->file, "fixtures/stories260K-hf/model.safetensors"));
    tsr__ckpt_tensor *d = tsr__checkpoint_find(ck, "model.layers.4.mlp.down_proj.weight");
    CHECK(d && d->n_dims == 2 && d->shape[0] == 64 && d->shape[1] == 172);
    tsr__ckpt_tensor *k = tsr__checkpoint_find(ck, "model.layers.2.self_attn.k_proj.weight");
    CHECK(k && k->n_dims == 2 && k->shape[0] == 32 && k->shape[1] == 64);
    tsr__ckpt_tensor *n = tsr__checkpoint_find(ck, "model.norm.weight");
    CHECK(n && n->n_dims == 1 && n->shape[0] == 64 && n->dtype == TSR_DTYPE_F32);
    CHECK(tsr__checkpoint_find(ck, "lm_head.weight") == NULL); /* tied embeddings */
    CHECK(tsr__checkpoint_find(ck, "model.norm") == NULL);
    CHECK(tsr__checkpoint_at(ck, 47) == NULL);
    /* Reference values, read with Python's safetensors 0.8.0 + numpy 2.4.6:
     *   f = safe_open("fixtures/stories260K-hf/model.safetensors", "np")
     *   hex(np.array(f.get_tensor(name)[i, j]).view(np.uint32).item())
     * embed[0,0] = -0.29474878, embed[0,1] = 0.56189561,
     * embed[511,63] = -0.42403260, embed[100,7] = 0.02549085,
     * norm[0] = 2.45830894, norm[63] = 1.70777690,
     * layers.4 down_proj[0,0] = -0.04791265, [63,171] = -0.00350687,
     * [10,100] = 0.11132434; layers.2 k_proj[31,63] = 0.01866939. */
    if (e && n && d && k) {
        CHECK(f32_bits_at(e, 0) == 0xbe96e950u);
        CHECK(f32_bits_at(e, 1) == 0x3f0fd864u);
        CHECK(f32_bits_at(e, 511 * 64 + 63) == 0xbed91acdu);
        CHECK(f32_bits_at(e, 100 * 64 + 7) == 0x3cd0d22eu);
        CHECK(f32_bits_at(n, 0) == 0x401d54efu);
        CHECK(f32_bits_at(n, 63) == 0x3fda986fu);
        CHECK(f32_bits_at(d, 0) == 0xbd44400eu);
        CHECK(f32_bits_at(d, 63 * 172 + 171) == 0xbb65d38bu);
        CHECK(f32_bits_at(d, 10 * 172 + 100) == 0x3de3fe04u);
        CHECK(f32_bits_at(k, 31 * 64 + 63) == 0x3c98f08cu);
    }
    /* find() agrees with at() for every tensor (the hash table) */
    size_t agree = 0;
    for (size_t i = 0; i < tsr__checkpoint_count(ck); i++) {
        tsr__ckpt_tensor *t = tsr__checkpoint_at(ck, i);
        agree += tsr__checkpoint_find(ck, t->name) == t && t->dtype == TSR_DTYPE_F32;
    }
    CHECK(agree == 47);
    tsr__checkpoint_close(ck);

    /* the file itself, and the file given to open() */
    st = tsr__checkpoint_open_file("fixtures/stories260K-hf/model.safetensors", &ck);
    CHECK(st == TSR_OK && tsr__checkpoint_count(ck) == 47);
    tsr__checkpoint_close(ck);
    st = tsr__checkpoint_open("fixtures/stories260K-hf/model.safetensors", &ck);
    CHECK(st == TSR_OK && tsr__checkpoint_count(ck) == 47);
    tsr__checkpoint_close(ck);
}

/* ---- stories260K: three shards ---------------------------------------------------- */

static void test_stories_sharded(void)
{
    tsr_checkpoint *one, *three;
    CHECK(tsr__checkpoint_open("fixtures/stories260K-hf", &one) == TSR_OK);
    tsr_status st = tsr__checkpoint_open("fixtures/stories260K-hf-sharded", &three);
    CHECK_MSG(st == TSR_OK, "%s", tsr_last_error());
    if (st) {
        tsr__checkpoint_close(one);
        return;
    }
    CHECK(tsr__checkpoint_count(three) == tsr__checkpoint_count(one));
    size_t same = 0;
    for (size_t i = 0; i < tsr__checkpoint_count(one); i++) {
        tsr__ckpt_tensor *a = tsr__checkpoint_at(one, i);
        tsr__ckpt_tensor *b = tsr__checkpoint_find(three, a->name);
        if (!b || a->dtype != b->dtype || a->n_dims != b->n_dims || a->nbytes != b->nbytes)
            continue;
        same += memcmp(a->shape, b->shape, sizeof a->shape[0] * (size_t)a->n_dims) == 0 &&
                memcmp(a->data, b->data, a->nbytes) == 0;
    }
    CHECK_MSG(same == 47, "%zu of 47 tensors identical", same);
    /* shard placement, as the index says (see the fixture's PROVENANCE.md) */
    tsr__ckpt_tensor *e = tsr__checkpoint_find(three, "model.embed_tokens.weight");
    tsr__ckpt_tensor *n = tsr__checkpoint_find(three, "model.norm.weight");
    CHECK(e && strstr(e->file, "model-00001-of-00003.safetensors"));
    CHECK(n && strstr(n->file, "model-00003-of-00003.safetensors"));
    tsr__checkpoint_close(one);
    tsr__checkpoint_close(three);
}

/* ---- a valid hand-made file: every dtype, scalars, empty tensors --------------------- */

static void test_all_dtypes(void)
{
    static const struct { const char *name; uint32_t dtype; size_t size; } dt[] = {
        {"F64", TSR_DTYPE_F64, 8}, {"F32", TSR_DTYPE_F32, 4}, {"F16", TSR_DTYPE_F16, 2},
        {"BF16", TSR_DTYPE_BF16, 2}, {"I64", TSR_DTYPE_I64, 8}, {"I32", TSR_DTYPE_I32, 4},
        {"I16", TSR_DTYPE_I16, 2}, {"I8", TSR_DTYPE_I8, 1}, {"U8", TSR_DTYPE_U8, 1},
        {"BOOL", TSR_DTYPE_BOOL, 1}, {"U16", TSR_DTYPE_U16, 2}, {"U32", TSR_DTYPE_U32, 4},
    };
    char header[4096];
    size_t off = 0, len = 0;
    len += (size_t)snprintf(header + len, sizeof header - len,
                            "{\"__metadata__\":{\"format\":\"pt\"}");
    for (size_t i = 0; i < 12; i++) { /* each dtype as shape [3] */
        len += (size_t)snprintf(header + len, sizeof header - len,
                                ",\"t_%s\":{\"dtype\":\"%s\",\"shape\":[3],"
                                "\"data_offsets\":[%zu,%zu]}",
                                dt[i].name, dt[i].name, off, off + 3 * dt[i].size);
        off += 3 * dt[i].size;
    }
    len += (size_t)snprintf(header + len, sizeof header - len,
                            ",\"scalar\":{\"dtype\":\"F32\",\"shape\":[],"
                            "\"data_offsets\":[%zu,%zu]}"
                            ",\"empty\":{\"dtype\":\"F16\",\"shape\":[4,0],"
                            "\"data_offsets\":[%zu,%zu]}}     ", /* padded */
                            off, off + 4, off + 4, off + 4);
    off += 4;
    const char *path = write_st(tmpdir, "dtypes.safetensors", header, off);
    tsr_checkpoint *ck;
    tsr_status st = tsr__checkpoint_open_file(path, &ck);
    CHECK_MSG(st == TSR_OK, "%s", tsr_last_error());
    if (st)
        return;
    CHECK(tsr__checkpoint_count(ck) == 14);
    size_t pos = 0;
    for (size_t i = 0; i < 12; i++) {
        char name[32];
        snprintf(name, sizeof name, "t_%s", dt[i].name);
        tsr__ckpt_tensor *t = tsr__checkpoint_find(ck, name);
        CHECK_MSG(t && t->dtype == dt[i].dtype && t->n_dims == 1 && t->shape[0] == 3 &&
                  t->nbytes == 3 * dt[i].size, "%s", name);
        /* the data is the file's bytes: write_st filled byte k with k */
        if (t)
            CHECK_MSG(((const unsigned char *)t->data)[0] == (unsigned char)pos, "%s", name);
        pos += 3 * dt[i].size;
    }
    tsr__ckpt_tensor *s = tsr__checkpoint_find(ck, "scalar");
    CHECK(s && s->n_dims == 0 && s->nbytes == 4);
    tsr__ckpt_tensor *z = tsr__checkpoint_find(ck, "empty");
    CHECK(z && z->n_dims == 2 && z->shape[0] == 4 && z->shape[1] == 0 && z->nbytes == 0);
    tsr__checkpoint_close(ck);

    /* no tensors at all: "{}" and no data */
    path = write_st(tmpdir, "nothing.safetensors", "{}", 0);
    CHECK(tsr__checkpoint_open_file(path, &ck) == TSR_OK && tsr__checkpoint_count(ck) == 0);
    tsr__checkpoint_close(ck);
}

/* ---- malformed files: one per rule ---------------------------------------------------- */

#define W(dtype, shape, b, e) \
    "{\"w\":{\"dtype\":\"" dtype "\",\"shape\":" shape ",\"data_offsets\":[" #b "," #e "]}}"

static void test_malformed(void)
{
    const tsr_status F = TSR_ERR_FORMAT;
    /* file shorter than 8 bytes */
    write_bytes(tmp_path("short.safetensors"), "\x02\0\0", 3);
    expect_fail(tmp_path("short.safetensors"), F, NULL, "shorter than the 8-byte");
    /* header length past the end of the file */
    {
        unsigned char b[16] = {0xe8, 0x03, 0, 0, 0, 0, 0, 0, '{', '}'}; /* N = 1000 */
        write_bytes(tmp_path("longhdr.safetensors"), b, sizeof b);
        expect_fail(tmp_path("longhdr.safetensors"), F, NULL, "header length 1000");
        memset(b, 0xff, 8); /* N = 2^64 - 1 */
        write_bytes(tmp_path("hugehdr.safetensors"), b, sizeof b);
        expect_fail(tmp_path("hugehdr.safetensors"), F, NULL, "runs past the end");
    }
    /* header not valid JSON: a missing ',' on line 2; jansson reports the
     * line and the column of the unexpected token's last character */
    bad_header("badjson.safetensors",
               "{\n  \"w\": {\"dtype\": \"F32\" \"shape\": [1], \"data_offsets\": [0, 4]}}",
               4, F, NULL, "at 2:30 (line:column)");
    /* header not an object */
    bad_header("array.safetensors", "[1, 2]", 0, F, NULL, "not a JSON object");
    /* duplicate tensor name within a header */
    bad_header("dupkey.safetensors",
               "{\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
               "\"w\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}",
               2, F, NULL, "duplicate");
    /* entry not an object; entry missing a field or with a wrong type */
    bad_header("entry.safetensors", "{\"w\": 5}", 0, F, "w", "not a JSON object");
    bad_header("nodtype.safetensors", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
               F, "w", "\"dtype\" is missing");
    bad_header("noshape.safetensors", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", 4,
               F, "w", "\"shape\" is missing");
    bad_header("nooffs.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4,
               F, "w", "\"data_offsets\" is missing");
    bad_header("dtypeint.safetensors",
               "{\"w\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
               F, "w", "\"dtype\" is of the wrong type");
    bad_header("shapestr.safetensors",
               "{\"w\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", 4,
               F, "w", "\"shape\" is of the wrong type");
    bad_header("shapereal.safetensors", W("F32", "[1.5]", 0, 4), 4, F, "w",
               "shape[0] is not an integer");
    bad_header("offs3.safetensors",
               "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}", 8,
               F, "w", "data_offsets");
    /* unknown dtype; a dtype of the spec that tessera lacks */
    bad_header("f7.safetensors", W("F7", "[1]", 0, 1), 1, F, "w", "\"F7\"");
    bad_header("fp8.safetensors", W("F8_E4M3", "[1]", 0, 1), 1, TSR_ERR_UNSUPPORTED, "w",
               "F8_E4M3");
    /* negative dimension */
    bad_header("negdim.safetensors", W("F32", "[2,-1]", 0, 4), 4, F, "w", "negative");
    /* more dimensions than tessera holds */
    bad_header("5d.safetensors", W("U8", "[1,1,1,1,1]", 0, 1), 1, TSR_ERR_UNSUPPORTED, "w",
               "dimensions");
    /* shape product * dtype size != end - begin */
    bad_header("size.safetensors", W("F32", "[2]", 0, 4), 4, F, "w", "need 8");
    /* begin > end */
    bad_header("backwards.safetensors", W("U8", "[0]", 4, 0), 4, F, "w", "begin is past end");
    /* offsets outside the data section */
    bad_header("outside.safetensors", W("F32", "[2]", 0, 8), 4, F, "w",
               "past the end of the data section");
    /* overlapping tensors (named both) */
    bad_header("overlap.safetensors",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
               12, F, "b", "overlap tensor \"a\"");
    /* a hole between tensors (named with the gap) and at the end */
    bad_header("hole.safetensors",
               "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
               "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
               12, F, "b", "bytes [4, 8)");
    bad_header("tail.safetensors", W("F32", "[1]", 0, 4), 8, F, "w", "bytes [4, 8)");
    bad_header("head.safetensors", W("F32", "[1]", 4, 8), 8, F, "w", "bytes [0, 4)");
    /* __metadata__ must map strings to strings */
    bad_header("meta.safetensors", "{\"__metadata__\":{\"format\":1}}", 0, F, "format",
               "__metadata__");
    /* the header must begin with '{' */
    bad_header("space.safetensors", " {}", 0, F, NULL, "must begin with '{'");
    /* not there at all */
    expect_fail(tmp_path("absent.safetensors"), TSR_ERR_NOT_FOUND, NULL, NULL);
}

/* ---- folders: the single-file fallback and sharded indexes ------------------------------- */

static void make_dir(const char *name)
{
    CHECK(mkdir(tmp_path(name), 0700) == 0);
}

static void test_folders(void)
{
    tsr_checkpoint *ck;
    /* one *.safetensors of another name: taken */
    make_dir("other");
    write_st(tmp_path("other"), "weights.safetensors", W("U8", "[2]", 0, 2), 2);
    tsr_status st = tsr__checkpoint_open(tmp_path("other"), &ck);
    CHECK_MSG(st == TSR_OK, "%s", tsr_last_error());
    CHECK(tsr__checkpoint_count(ck) == 1 && tsr__checkpoint_find(ck, "w"));
    tsr__checkpoint_close(ck);
    /* two of them: ambiguous, both named */
    write_st(tmp_path("other"), "extra.safetensors", W("U8", "[2]", 0, 2), 2);
    CHECK(tsr__checkpoint_open(tmp_path("other"), &ck) == TSR_ERR_FORMAT && !ck);
    CHECK_CONTAINS(tsr_last_error(), "weights.safetensors");
    CHECK_CONTAINS(tsr_last_error(), "extra.safetensors");
    /* none */
    make_dir("empty");
    CHECK(tsr__checkpoint_open(tmp_path("empty"), &ck) == TSR_ERR_NOT_FOUND);
    CHECK_CONTAINS(tsr_last_error(), tmp_path("empty"));
}

#define SHARD_A W("F32", "[1]", 0, 4)
#define SHARD_B "{\"v\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}," \
                "\"y\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[8,12]}}"

/* A folder with shards a.safetensors (w) and b.safetensors (v, y) and `index`. */
static const char *sharded(const char *name, const char *index)
{
    make_dir(name);
    write_st(tmp_path(name), "a.safetensors", SHARD_A, 4);
    write_st(tmp_path(name), "b.safetensors", SHARD_B, 12);
    static char path[512];
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", tmp_path(name));
    write_text(path, index);
    return path;
}

static void expect_index_fail(const char *name, const char *index, tsr_status want,
                              const char *f1, const char *f2, const char *f3)
{
    const char *ipath = sharded(name, index);
    tsr_checkpoint *ck = (tsr_checkpoint *)1;
    tsr_status st = tsr__checkpoint_open(tmp_path(name), &ck);
    if (getenv("TSR_TEST_VERBOSE"))
        fprintf(stderr, "  %s\n", tsr_last_error());
    CHECK_MSG(st == want, "%s: status %d, want %d (%s)", name, st, want, tsr_last_error());
    CHECK(ck == NULL);
    CHECK_CONTAINS(tsr_last_error(), f1 ? f1 : ipath);
    if (f2)
        CHECK_CONTAINS(tsr_last_error(), f2);
    if (f3)
        CHECK_CONTAINS(tsr_last_error(), f3);
}

static void test_sharded_errors(void)
{
    /* the good case first */
    sharded("good", "{\"metadata\":{\"total_size\":16},\"weight_map\":{"
                    "\"w\":\"a.safetensors\",\"v\":\"b.safetensors\",\"y\":\"b.safetensors\"}}");
    tsr_checkpoint *ck;
    tsr_status st = tsr__checkpoint_open(tmp_path("good"), &ck);
    CHECK_MSG(st == TSR_OK, "%s", tsr_last_error());
    CHECK(tsr__checkpoint_count(ck) == 3);
    CHECK(tsr__checkpoint_find(ck, "v") && tsr__checkpoint_find(ck, "v")->nbytes == 8);
    tsr__checkpoint_close(ck);

    /* weight_map names a missing shard: the index and the shard */
    expect_index_fail("missing", "{\"weight_map\":{\"w\":\"a.safetensors\","
                      "\"v\":\"c.safetensors\"}}", TSR_ERR_NOT_FOUND, NULL,
                      "\"c.safetensors\"", "\"v\"");
    /* a tensor listed in the index but absent from its shard */
    expect_index_fail("absent", "{\"weight_map\":{\"w\":\"a.safetensors\",\"v\":"
                      "\"b.safetensors\",\"u\":\"b.safetensors\"}}", TSR_ERR_FORMAT, NULL,
                      "\"u\"", "\"b.safetensors\"");
    /* a tensor of a shard missing from the index: the shard, tensor and index */
    expect_index_fail("unlisted", "{\"weight_map\":{\"w\":\"a.safetensors\","
                      "\"v\":\"b.safetensors\"}}", TSR_ERR_FORMAT, NULL, "\"y\"",
                      "unlisted/b.safetensors");
    /* a .safetensors file the index does not name is not read (as transformers) */
    sharded("ignored", "{\"weight_map\":{\"w\":\"a.safetensors\"}}");
    CHECK(tsr__checkpoint_open(tmp_path("ignored"), &ck) == TSR_OK);
    CHECK(tsr__checkpoint_count(ck) == 1);
    tsr__checkpoint_close(ck);
    /* listed for the wrong shard */
    expect_index_fail("wrong", "{\"weight_map\":{\"w\":\"b.safetensors\","
                      "\"v\":\"b.safetensors\",\"x\":\"a.safetensors\"}}", TSR_ERR_FORMAT,
                      NULL, "\"w\"", "a.safetensors");
    /* the same tensor in two shards: both files named */
    make_dir("dup");
    write_st(tmp_path("dup"), "a.safetensors", SHARD_A, 4);
    write_st(tmp_path("dup"), "b.safetensors", SHARD_A, 4);
    write_text(tmp_path("dup/model.safetensors.index.json"),
               "{\"weight_map\":{\"w\":\"a.safetensors\",\"x\":\"b.safetensors\"}}");
    CHECK(tsr__checkpoint_open(tmp_path("dup"), &ck) == TSR_ERR_FORMAT);
    CHECK_CONTAINS(tsr_last_error(), "dup/a.safetensors");
    CHECK_CONTAINS(tsr_last_error(), "dup/b.safetensors");
    CHECK_CONTAINS(tsr_last_error(), "\"w\"");
    /* no weight_map; invalid JSON (line:column); a path outside the folder */
    expect_index_fail("nomap", "{\"metadata\":{}}", TSR_ERR_FORMAT, NULL, "weight_map", NULL);
    expect_index_fail("badjson", "{\"weight_map\":\n{\"w\" \"a\"}}", TSR_ERR_FORMAT, NULL,
                      ":2:", NULL);
    expect_index_fail("escape", "{\"weight_map\":{\"w\":\"../a.safetensors\"}}",
                      TSR_ERR_FORMAT, NULL, "\"w\"", NULL);
    /* a malformed shard: the shard's path and tensor */
    make_dir("badshard");
    write_st(tmp_path("badshard"), "a.safetensors", W("F32", "[2]", 0, 4), 4);
    write_text(tmp_path("badshard/model.safetensors.index.json"),
               "{\"weight_map\":{\"w\":\"a.safetensors\"}}");
    CHECK(tsr__checkpoint_open(tmp_path("badshard"), &ck) == TSR_ERR_FORMAT);
    CHECK_CONTAINS(tsr_last_error(), "badshard/a.safetensors: tensor \"w\"");
}

int main(void)
{
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_stories_single();
    test_stories_sharded();
    test_all_dtypes();
    test_malformed();
    test_folders();
    test_sharded_errors();
    nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    return tsr_test_report("test_safetensors");
}
