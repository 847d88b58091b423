// random: two independent 16-byte draws from the host's secure random source (wasi:random/random).
// Usage: random
#include <stdio.h>
#include <unistd.h>

static int print_draw(const char *label) {
    unsigned char bytes[16];
    if (getentropy(bytes, sizeof bytes) != 0) {
        perror("getentropy");
        return 1;
    }
    printf("%s ", label);
    for (size_t i = 0; i < sizeof bytes; i++) printf("%02x", bytes[i]);
    printf("\n");
    return 0;
}

int main(void) {
    return print_draw("random") || print_draw("random2");
}
