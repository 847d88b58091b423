// bigin: reads stdin to EOF and prints its length and FNV-1a 64-bit hash, so a test can check a large
// input arrived intact without echoing it back.
// Usage: bigin < input
#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

static unsigned char buf[64 * 1024];

int main(void) {
    uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a 64 offset basis
    long long total = 0;
    for (;;) {
        ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
        if (n == 0) break;
        if (n < 0) {
            perror("read");
            return 1;
        }
        for (ssize_t i = 0; i < n; i++) {
            hash ^= buf[i];
            hash *= 0x100000001b3ULL;  // FNV-1a 64 prime
        }
        total += n;
    }
    printf("bytes %lld fnv1a64 %016llx\n", total, (unsigned long long)hash);
    return 0;
}
