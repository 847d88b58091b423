// bigout: writes <MiB> mebibytes to stdout in 64 KiB writes. Byte i of the stream is i % 251
// (251 is prime, so no two 64 KiB chunks are alike); in Python: bytes(i % 251 for i in range(n)).
// Usage: bigout [MiB]   (default 10)
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define CHUNK (64 * 1024)

static unsigned char buf[CHUNK];

int main(int argc, char **argv) {
    long long total = (argc > 1 ? atoll(argv[1]) : 10) * 1024 * 1024;
    for (long long offset = 0; offset < total;) {
        size_t len = total - offset < CHUNK ? (size_t)(total - offset) : CHUNK;
        for (size_t i = 0; i < len; i++) buf[i] = (unsigned char)((offset + (long long)i) % 251);
        for (size_t done = 0; done < len;) {  // write() may take only part of the chunk
            ssize_t w = write(STDOUT_FILENO, buf + done, len - done);
            if (w < 0) {
                perror("write");
                return 1;
            }
            done += (size_t)w;
        }
        offset += (long long)len;
    }
    return 0;
}
