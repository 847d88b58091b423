// fs_slashes: path operations with a trailing "/" (it must name a directory), each printed as
// "<step>: ok" or "<step>: <ERRNO>", so a test can compare rr with `wasmtime run --dir` line by line.
// Usage: fs_slashes <dir>   (a writable preopen; the guest works in <dir>/slashes.tmp and removes it)
// Calls are *at() on a directory fd, so wasi-libc hands every path to the host unchanged.
// Exits 0 when it could set up and clean up its scratch tree, whatever the steps answered.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int dir;

static const char *errno_name(int err) {
    switch (err) {
#define NAME(e) case e: return #e;
        NAME(EACCES) NAME(EBADF) NAME(EEXIST) NAME(EINVAL) NAME(EISDIR) NAME(ELOOP) NAME(ENOENT)
        NAME(ENOTCAPABLE) NAME(ENOTDIR) NAME(ENOTEMPTY) NAME(EPERM) NAME(EXDEV)
#undef NAME
    default: return "EOTHER";
    }
}

static int step(const char *name, int rc) {
    printf("%s: %s\n", name, rc == 0 ? "ok" : errno_name(errno));
    return rc;
}

static int create_file(const char *path) {
    int fd = openat(dir, path, O_CREAT | O_WRONLY | O_EXCL, 0644);
    return fd < 0 ? -1 : close(fd);
}

static int open_close(const char *path, int flags) {
    int fd = openat(dir, path, flags, 0644);
    return fd < 0 ? -1 : close(fd);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: fs_slashes <dir>\n");
        return 2;
    }
    int base = open(argv[1], O_RDONLY | O_DIRECTORY);
    if (base < 0 || mkdirat(base, "slashes.tmp", 0755) != 0) {
        fprintf(stderr, "fs_slashes: cannot make %s/slashes.tmp: %s\n", argv[1], strerror(errno));
        return 1;
    }
    dir = openat(base, "slashes.tmp", O_RDONLY | O_DIRECTORY);
    // The tree: file f, directory d, symlinks ld -> d, lf -> f, dangle -> missing.
    if (dir < 0 || create_file("f") || mkdirat(dir, "d", 0755) || symlinkat("d", dir, "ld")
        || symlinkat("f", dir, "lf") || symlinkat("missing", dir, "dangle")) {
        fprintf(stderr, "fs_slashes: set-up failed: %s\n", strerror(errno));
        return 1;
    }

    // link-at: a new name ending in "/" is opened as a directory and the link made at "." in it.
    step("link f new/", linkat(dir, "f", dir, "new/", 0));
    step("link f d/", linkat(dir, "f", dir, "d/", 0));
    step("link f f/", linkat(dir, "f", dir, "f/", 0));
    step("link f ld/", linkat(dir, "f", dir, "ld/", 0));
    step("link f dangle/", linkat(dir, "f", dir, "dangle/", 0));
    step("link f/ new", linkat(dir, "f/", dir, "new", 0));
    step("link d/ new", linkat(dir, "d/", dir, "new", 0));
    step("link lf/ new", linkat(dir, "lf/", dir, "new", 0));
    if (step("link f new", linkat(dir, "f", dir, "new", 0)) == 0) unlinkat(dir, "new", 0);

    // symlink-at: the same rule for the link's own name.
    step("symlink src new/", symlinkat("src", dir, "new/"));
    step("symlink src d/", symlinkat("src", dir, "d/"));
    step("symlink src f/", symlinkat("src", dir, "f/"));
    step("symlink src ld/", symlinkat("src", dir, "ld/"));
    step("symlink src dangle/", symlinkat("src", dir, "dangle/"));
    if (step("symlink src new", symlinkat("src", dir, "new")) == 0) unlinkat(dir, "new", 0);

    // The other path operations, pinned so a change to the shared resolution shows up here too.
    // rename-at: the slashes are dropped, a final symlink is never followed, the source must be a
    // directory if it had them. Each success is undone at once so the next step sees the same tree.
    step("rename f/ g", renameat(dir, "f/", dir, "g"));
    step("rename lf/ g", renameat(dir, "lf/", dir, "g"));
    step("rename ld/ g", renameat(dir, "ld/", dir, "g"));
    step("rename d ld/", renameat(dir, "d", dir, "ld/"));
    if (step("rename d/ e/", renameat(dir, "d/", dir, "e/")) == 0) renameat(dir, "e", dir, "d");
    if (step("rename f g/", renameat(dir, "f", dir, "g/")) == 0) renameat(dir, "g", dir, "f");

    // unlink, rmdir, readlink: like link-at, the directory itself ("." in it).
    step("unlink f/", unlinkat(dir, "f/", 0));
    step("unlink d/", unlinkat(dir, "d/", 0));
    step("unlink lf/", unlinkat(dir, "lf/", 0));
    step("unlink ld/", unlinkat(dir, "ld/", 0));
    step("rmdir f/", unlinkat(dir, "f/", AT_REMOVEDIR));
    step("rmdir ld/", unlinkat(dir, "ld/", AT_REMOVEDIR));
    step("rmdir d/", unlinkat(dir, "d/", AT_REMOVEDIR));
    char target[64];
    step("readlink lf/", readlinkat(dir, "lf/", target, sizeof target) < 0 ? -1 : 0);
    step("readlink ld/", readlinkat(dir, "ld/", target, sizeof target) < 0 ? -1 : 0);

    // mkdir: slashes dropped, nothing followed (a dangling symlink's target is not created).
    step("mkdir f/", mkdirat(dir, "f/", 0755));
    step("mkdir dangle/", mkdirat(dir, "dangle/", 0755));
    if (step("mkdir m/", mkdirat(dir, "m/", 0755)) == 0) unlinkat(dir, "m", AT_REMOVEDIR);

    // stat, open, set-times: a final symlink is followed and must lead to a directory.
    struct stat st;
    step("stat f/", fstatat(dir, "f/", &st, 0));
    step("stat lf/ follow", fstatat(dir, "lf/", &st, 0));
    step("stat lf/", fstatat(dir, "lf/", &st, AT_SYMLINK_NOFOLLOW));
    step("stat ld/", fstatat(dir, "ld/", &st, AT_SYMLINK_NOFOLLOW));
    step("stat missing/", fstatat(dir, "missing/", &st, 0));
    step("utimes f/", utimensat(dir, "f/", NULL, 0));
    step("utimes ld/", utimensat(dir, "ld/", NULL, 0));
    step("open f/", open_close("f/", O_RDONLY));
    step("open ld/", open_close("ld/", O_RDONLY));
    step("open new/ create", open_close("new/", O_CREAT | O_WRONLY));
    step("open d/ create", open_close("d/", O_CREAT | O_WRONLY));
    step("open missing", open_close("missing", O_RDONLY));  // dangle's target was never made

    // Clean up whatever a step may have left (ignoring errors), then the scratch directory itself.
    const char *names[] = {"new", "g", "e", "m", "missing", "src", "f", "ld", "lf", "dangle"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) unlinkat(dir, names[i], 0);
    unlinkat(dir, "e", AT_REMOVEDIR);
    unlinkat(dir, "m", AT_REMOVEDIR);
    unlinkat(dir, "missing", AT_REMOVEDIR);
    unlinkat(dir, "d", AT_REMOVEDIR);
    close(dir);
    return step("cleanup", unlinkat(base, "slashes.tmp", AT_REMOVEDIR)) == 0 ? 0 : 1;
}
