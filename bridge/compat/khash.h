/* khash.h - a stand-in for klib's khash.h, which libh2o 2.2.5's
 * <h2o/http2_internal.h> includes but Debian 12's libh2o-dev does not ship.
 * Owns nothing: the connection's stream table stays opaque (the connection
 * holds only a pointer to it, so h2o_http2_conn_t keeps libh2o's own
 * layout), and the table's look-ups are declared, never defined: code that
 * calls one (h2o_http2_conn_get_stream) fails to link rather than read a
 * table it does not know. Only conn.c sees it (CMakeLists.txt). */
#ifndef WB_COMPAT_KHASH_H
#define WB_COMPAT_KHASH_H

#include <stdint.h>

typedef uint32_t khint_t;
typedef khint_t khiter_t;

#define khash_t(name) kh_##name##_t
#define KHASH_MAP_INIT_INT64(name, khval_t) typedef struct kh_##name##_s kh_##name##_t;

khiter_t wb_khash_unavailable_get(const void *h, uint64_t key);
khiter_t wb_khash_unavailable_end(const void *h);
void *wb_khash_unavailable_val(const void *h, khiter_t i);
#define kh_get(name, h, k) wb_khash_unavailable_get((h), (k))
#define kh_end(h) wb_khash_unavailable_end(h)
#define kh_val(h, i) wb_khash_unavailable_val((h), (i))

#endif
