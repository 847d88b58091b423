// trap: writes one line, then executes `unreachable`, so the run ends in a wasm trap, not an exit.
// Usage: trap
#include <stdio.h>

int main(void) {
    printf("about to trap\n");
    fflush(stdout);  // the line must reach the host before the trap kills the instance
    __builtin_trap();
}
