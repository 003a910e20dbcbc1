/* tests/unit/test_tokenizer_build.c - tsr__tokenizer_create() from hand-made
 * specs: errors, a Sequence of regex splits, ignore_merges.  The GGUF path
 * (tsr__tokenizer_from_gguf, which builds through this builder) is checked
 * against llama.cpp's test vectors in test_tokenizer_gguf.c. */
#include <stdlib.h>
#include <string.h>
#include "tokenizer.h"
#include "tsr_test.h"

static tsr__tok_spec base(const char *const *toks, size_t n, const char *const *merges, size_t nm)
{
    tsr__tok_spec sp;
    memset(&sp, 0, sizeof sp);
    sp.model = TSR__TOK_BPE, sp.n_vocab = n, sp.tokens = toks;
    sp.n_merges = nm, sp.merges = merges;
    sp.bos_id = sp.eos_id = sp.unk_id = sp.pad_id = -1;
    return sp;
}

static size_t encode(const tsr__tok_spec *sp, const char *text, int32_t *ids)
{
    tsr_tokenizer *tok = NULL;
    size_t n = 0;
    CHECK_MSG(tsr__tokenizer_create(sp, "spec", &tok) == TSR_OK, "%s", tsr_last_error());
    if (tok)
        CHECK(tsr_tokenize(tok, text, strlen(text), 0, ids, 16, &n) == TSR_OK);
    tsr_tokenizer_destroy(tok);
    return n;
}

int main(void)
{
    /* a spec error names the merge */
    const char *toks[] = {"a", "b"}, *bad[] = {"a c"};
    tsr__tok_spec sp = base(toks, 2, bad, 1);
    tsr_tokenizer *tok = NULL;
    CHECK(tsr__tokenizer_create(&sp, "x.gguf", &tok) == TSR_ERR_FORMAT && !tok);
    CHECK_CONTAINS(tsr_last_error(), "x.gguf: merge 0: token \"c\"");

    /* several regexes: each splits the pieces of the one before (HF Sequence
     * of Split(Isolated)); ASCII letters and digits are their own byte-level form */
    int32_t ids[16];
    const char *v[] = {"a", "b", "1", "2", "ab", "12"}, *m[] = {"a b", "1 2"};
    const char *res[] = {"\\p{N}", "[a-z]+"};
    sp = base(v, 6, m, 2);
    sp.pre = TSR__TOK_PRE_REGEX;
    sp.pre_regex = "[a-z]+|[0-9]+";
    size_t n = encode(&sp, "ab12", ids);
    CHECK(n == 2 && ids[0] == 4 && ids[1] == 5);           /* ab | 12 */
    sp.pre_regexes = res, sp.n_pre_regexes = 2;            /* used instead of pre_regex */
    n = encode(&sp, "ab12", ids);
    CHECK(n == 3 && ids[0] == 4 && ids[1] == 2 && ids[2] == 3); /* ab | 1 | 2 */
    const char *bad_re[] = {"\\p{N}", "[a-"};
    sp.pre_regexes = bad_re;
    CHECK(tsr__tokenizer_create(&sp, "y.gguf", &tok) != TSR_OK && !tok);
    CHECK_CONTAINS(tsr_last_error(), "y.gguf");

    /* ignore_merges: a word that is a token is taken whole (Llama-3) */
    const char *w[] = {"a", "b", "c", "ab", "abc"}, *wm[] = {"a b"};
    sp = base(w, 5, wm, 1);
    n = encode(&sp, "abc", ids);
    CHECK(n == 2 && ids[0] == 3 && ids[1] == 2);           /* no merge "ab c" */
    sp.ignore_merges = true;
    n = encode(&sp, "abc", ids);
    CHECK(n == 1 && ids[0] == 4);
    return tsr_test_report("test_tokenizer_build");
}
