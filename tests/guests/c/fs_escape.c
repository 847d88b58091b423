// fs_escape: tries to reach outside its one preopened directory, printing each attempt's result
// ("<step>: ok[ detail]" or the errno name) so a test can compare it with wasmtime's answers.
// Usage: fs_escape <dir> [write]   e.g. `wasmtime run --dir host::/data fs_escape.wasm /data`
// The test prepares, inside <dir>: inside.txt, sub/, etc_link -> /etc, up -> .., loop1 <-> loop2;
// and next to <dir> (outside the grant): secret.txt.
// With `write` it also tries to overwrite inside.txt (a read-only grant must refuse that).
// Every attempt goes through openat()/...at() on a directory fd, so wasi-libc passes the path to
// the host as written (open() with an absolute path would be resolved against the preopens by libc).
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *errno_name(int err) {
    switch (err) {
#define NAME(e) case e: return #e;
        NAME(EACCES) NAME(EBADF) NAME(EEXIST) NAME(EINVAL) NAME(EIO) NAME(EISDIR) NAME(ELOOP)
        NAME(ENAMETOOLONG) NAME(ENOENT) NAME(ENOTCAPABLE) NAME(ENOTDIR) NAME(ENOTEMPTY) NAME(EPERM)
        NAME(EROFS) NAME(EXDEV)
#undef NAME
    default: return "EOTHER";
    }
}

static void report(const char *step, int ok, const char *detail) {
    if (ok) printf("%s: ok%s%s\n", step, detail[0] ? " " : "", detail);
    else printf("%s: %s\n", step, errno_name(errno));
}

// Opens path under dir and reads up to 64 bytes; reports what came back.
static void try_read(int dir, const char *path, int flags) {
    char step[256], buf[65] = {0};
    snprintf(step, sizeof step, "open %s", path);
    int fd = openat(dir, path, O_RDONLY | flags);
    if (fd < 0) {
        report(step, 0, "");
        return;
    }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    char detail[128];
    snprintf(detail, sizeof detail, "read %zd bytes", n);
    report(step, 1, detail);
}

int main(int argc, char **argv) {
    const char *base = argc > 1 ? argv[1] : ".";
    int dir = open(base, O_RDONLY | O_DIRECTORY);
    if (dir < 0) {
        report("open base", 0, "");
        return 1;
    }
    try_read(dir, "inside.txt", 0);            // control: allowed
    try_read(dir, "sub/../inside.txt", 0);     // ".." that stays inside: allowed
    try_read(dir, "../secret.txt", 0);
    try_read(dir, "sub/../../secret.txt", 0);
    try_read(dir, "/etc/passwd", 0);
    try_read(dir, "etc_link/passwd", 0);
    try_read(dir, "up/secret.txt", 0);
    try_read(dir, "..", O_DIRECTORY);
    try_read(dir, "etc_link", O_DIRECTORY);
    try_read(dir, "loop1", 0);
    try_read(dir, "loop1/x", 0);

    struct stat st;
    report("stat etc_link/passwd", fstatat(dir, "etc_link/passwd", &st, 0) == 0, "");
    report("stat ../secret.txt", fstatat(dir, "../secret.txt", &st, 0) == 0, "");
    report("lstat etc_link", fstatat(dir, "etc_link", &st, AT_SYMLINK_NOFOLLOW) == 0,
           S_ISLNK(st.st_mode) ? "symlink" : "");

    char target[256] = {0};
    ssize_t n = readlinkat(dir, "etc_link", target, sizeof target - 1);
    report("readlink etc_link", n >= 0, n >= 0 ? target : "");

    int fd = openat(dir, "../created_outside.txt", O_WRONLY | O_CREAT, 0644);
    report("create ../created_outside.txt", fd >= 0, "");
    if (fd >= 0) close(fd);
    fd = openat(dir, "etc_link/rr_created", O_WRONLY | O_CREAT, 0644);
    report("create etc_link/rr_created", fd >= 0, "");
    if (fd >= 0) close(fd);
    report("mkdir ../newdir", mkdirat(dir, "../newdir", 0755) == 0, "");
    report("symlink /etc/passwd abs_link", symlinkat("/etc/passwd", dir, "abs_link") == 0, "");
    report("rename inside.txt ../moved.txt", renameat(dir, "inside.txt", dir, "../moved.txt") == 0, "");
    report("unlink ../secret.txt", unlinkat(dir, "../secret.txt", 0) == 0, "");

    if (argc > 2 && strcmp(argv[2], "write") == 0) {
        fd = openat(dir, "inside.txt", O_WRONLY | O_TRUNC);
        report("truncate inside.txt", fd >= 0, "");
        if (fd >= 0) {
            ssize_t w = write(fd, "overwritten\n", 12);
            report("write inside.txt", w == 12, "");
            close(fd);
        }
        report("mkdir newsub", mkdirat(dir, "newsub", 0755) == 0, "");
    }
    close(dir);
    return 0;
}
