// exit_code: exits with the status given on the command line (wasi:cli/exit).
// Usage: exit_code <n>   (default 0)
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    int code = argc > 1 ? atoi(argv[1]) : 0;
    fprintf(stderr, "exiting with %d\n", code);
    exit(code);
}
