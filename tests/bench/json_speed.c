/* json_speed.c - how fast json.c validates and tokenizes a body: the time
 * per wb_json_parse of each file given, over many repetitions. A figure to
 * compare builds with, never asserted.
 * Usage: bench-json-speed FILE...   (e.g. the bodies tests/bench/run writes) */
#include "json.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define MAX_BODY (1u << 20)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    static char buf[MAX_BODY];
    wb_json_t js;
    char err[256];

    if (argc < 2) {
        fprintf(stderr, "usage: %s FILE...\n", argv[0]);
        return 2;
    }
    wb_json_init(&js, 1000000);
    for (int a = 1; a < argc; a++) {
        FILE *f = fopen(argv[a], "rb");
        if (f == NULL) {
            perror(argv[a]);
            return 1;
        }
        size_t n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        /* about 0.2 s per file whatever its size */
        long reps = (long)(2e8 / (double)(n + 64));
        if (wb_json_parse(&js, buf, n, 64, err, sizeof(err)) != WB_OK) {
            fprintf(stderr, "%s: %s\n", argv[a], err);
            return 1;
        }
        double t0 = now_s();
        for (long i = 0; i < reps; i++)
            if (wb_json_parse(&js, buf, n, 64, err, sizeof(err)) != WB_OK)
                return 1;
        double per = (now_s() - t0) / (double)reps;
        printf("%-40s %8zu bytes %6u tokens %9.0f ns/parse %7.0f MB/s\n", argv[a], n, js.ntoks,
               per * 1e9, (double)n / per / 1e6);
    }
    wb_json_free(&js);
    return 0;
}
