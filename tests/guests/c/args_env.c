// args_env: what the guest was started with: arguments, environment (in order) and working directory.
// Usage: args_env [args...]   (run with -S inherit-env or --env K=V to give it an environment)
#include <limits.h>
#include <stdio.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv) {
    printf("argc %d\n", argc);
    for (int i = 0; i < argc; i++) printf("argv[%d] %s\n", i, argv[i]);
    for (char **e = environ; *e != NULL; e++) printf("env %s\n", *e);
    char cwd[PATH_MAX];
    printf("cwd %s\n", getcwd(cwd, sizeof cwd) ? cwd : "(none)");
    return 0;
}
