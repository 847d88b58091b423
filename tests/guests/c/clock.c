// clock: wall time, monotonic resolution, and a measured sleep.
// Usage: clock [sleep_ms]   (default 10)
// Exercises wasi:clocks/wall-clock now, monotonic-clock resolution/now, and a timed poll (usleep).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static int64_t to_ns(struct timespec ts) {
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int main(int argc, char **argv) {
    long ms = argc > 1 ? atol(argv[1]) : 10;
    struct timespec wall, res, t0, t1;

    if (clock_gettime(CLOCK_REALTIME, &wall) != 0) {
        perror("clock_gettime(CLOCK_REALTIME)");
        return 1;
    }
    printf("wall %lld.%09ld\n", (long long)wall.tv_sec, wall.tv_nsec);

    if (clock_getres(CLOCK_MONOTONIC, &res) != 0) {
        perror("clock_getres(CLOCK_MONOTONIC)");
        return 1;
    }
    printf("resolution_ns %lld\n", (long long)to_ns(res));

    clock_gettime(CLOCK_MONOTONIC, &t0);
    usleep((useconds_t)ms * 1000);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    int64_t slept = to_ns(t1) - to_ns(t0);
    printf("slept_ns %lld\n", (long long)slept);
    printf("slept_ok %d\n", slept >= (int64_t)ms * 1000000);
    return 0;
}
