// echo_stdin: copies stdin to stdout byte for byte until EOF, then reports the count on stderr.
// Usage: echo_stdin < input
#include <stdio.h>
#include <unistd.h>

static unsigned char buf[64 * 1024];

int main(void) {
    long long total = 0;
    for (;;) {
        ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
        if (n == 0) break;
        if (n < 0) {
            perror("read");
            return 1;
        }
        for (ssize_t off = 0; off < n;) {  // write() may take only part of the buffer
            ssize_t w = write(STDOUT_FILENO, buf + off, (size_t)(n - off));
            if (w < 0) {
                perror("write");
                return 1;
            }
            off += w;
        }
        total += n;
    }
    fprintf(stderr, "bytes %lld\n", total);
    return 0;
}
