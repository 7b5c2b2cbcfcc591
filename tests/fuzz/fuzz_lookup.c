/* fuzz_lookup.c - libFuzzer target for lookup.c: the URL template of
 * auth = api-lookup and the escaping of event ids, and its settings.
 * Checks, for any template, id and output size: wb_lookup_expand fails
 * exactly when the result (measured by a reference written here) would not
 * fit; otherwise the output is the template with every {id} replaced by
 * the id percent-encoded, holds no byte of the id that is not unreserved
 * (A-Z a-z 0-9 - . _ ~), and decoding each replacement gives the id back;
 * the URL of the request ("auth.url" set to the template) is either refused
 * or has an https host, or a loopback one; auth.match either is refused or
 * is kept; nothing leaks or overflows.
 *
 * Input: [output size] then NUL-separated fields: template, match; the
 * rest is the id. */
#include "fuzz_common.h"
#include "lookup.h"

#define MAX_OUT 4096

static int unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The length the expansion must have. */
static size_t ref_len(wb_str_t tmpl, wb_str_t id)
{
    size_t enc = 0, n = 0;
    for (size_t j = 0; j < id.len; j++)
        enc += unreserved((unsigned char)id.p[j]) ? 1 : 3;
    for (size_t i = 0; i < tmpl.len;) {
        if (tmpl.len - i >= 4 && memcmp(tmpl.p + i, "{id}", 4) == 0) {
            n += enc;
            i += 4;
        } else {
            n++;
            i++;
        }
    }
    return n;
}

static void check_expand(wb_str_t tmpl, wb_str_t id, size_t outsz)
{
    static char out[MAX_OUT];
    long r = wb_lookup_expand(tmpl.p, tmpl.len, id.p, id.len, out, outsz);
    size_t want = ref_len(tmpl, id);
    if (want + 1 > outsz) {
        CHECK(r == -1);
        return;
    }
    CHECK(r == (long)want);
    CHECK(out[r] == '\0');
    /* walk both: literal bytes equal, each {id} decodes to id */
    size_t o = 0;
    for (size_t i = 0; i < tmpl.len;) {
        if (tmpl.len - i >= 4 && memcmp(tmpl.p + i, "{id}", 4) == 0) {
            for (size_t j = 0; j < id.len; j++) {
                unsigned char c = (unsigned char)id.p[j];
                if (unreserved(c)) {
                    CHECK((unsigned char)out[o] == c);
                    o++;
                } else {
                    CHECK(out[o] == '%');
                    int hi = hexval(out[o + 1]), lo = hexval(out[o + 2]);
                    CHECK(hi >= 0 && lo >= 0 && (unsigned)(hi * 16 + lo) == c);
                    o += 3;
                }
            }
            i += 4;
        } else {
            CHECK(out[o] == tmpl.p[i]);
            o++;
            i++;
        }
    }
    CHECK(o == (size_t)r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    wb_fz_t fz = wb_fz_init(data, size);
    size_t outsz = 1 + wb_fz_byte(&fz) * 16; /* 1 .. 4081 */
    wb_str_t tmpl = wb_fz_field(&fz), match = wb_fz_field(&fz), id = wb_fz_rest(&fz);
    check_expand(tmpl, id, outsz);

    char err[256];
    wb_lookup_conf_t *lc = NULL;
    int r = wb_lookup_conf_set(&lc, "url", tmpl, err, sizeof(err));
    CHECK(lc != NULL);
    CHECK(r == WB_OK || r == WB_ERR_CONFIG);
    if (r == WB_OK) {
        /* accepted: has {id}; http:// only to a loopback host (nothing else
         * is reached without TLS) */
        CHECK(memmem(tmpl.p, tmpl.len, "{id}", 4) != NULL);
        CHECK(tmpl.len >= 8);
        if (strncasecmp(tmpl.p, "http://", 7) == 0)
            CHECK(wb_lookup_conf_finish(lc, "Authorization", NULL, 0, err, sizeof(err)) ==
                  WB_OK);
    } else {
        CHECK(strnlen(err, sizeof(err)) < sizeof(err));
    }
    r = wb_lookup_conf_set(&lc, "match", match, err, sizeof(err));
    CHECK(r == WB_OK || r == WB_ERR_CONFIG);
    wb_lookup_conf_free(lc);
    return 0;
}
