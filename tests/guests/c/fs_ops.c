// fs_ops: a fixed sequence of filesystem operations inside one preopened directory, each printed with
// its result ("ok ..." or the errno name), so a test can compare both the output and the tree left behind.
// Usage: fs_ops <dir>   e.g. `wasmtime run --dir host_dir::/data fs_ops.wasm /data`, or `--dir .` with `.`
// Needs <dir>/in.txt. Exits 0 if every step succeeded, else 1. Running it twice in the same directory
// fails at "mkdir sub: EEXIST" on purpose: a deterministic error for record/replay tests.
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *base;
static int failures;

static const char *errno_name(int err) {
    switch (err) {
#define NAME(e) case e: return #e;
        NAME(EACCES) NAME(EBADF) NAME(EBUSY) NAME(EEXIST) NAME(EFBIG) NAME(EINVAL) NAME(EIO) NAME(EISDIR)
        NAME(ELOOP) NAME(EMFILE) NAME(ENAMETOOLONG) NAME(ENOENT) NAME(ENOSPC) NAME(ENOTCAPABLE)
        NAME(ENOTDIR) NAME(ENOTEMPTY) NAME(EPERM) NAME(EROFS) NAME(EXDEV)
#undef NAME
    default: return "EOTHER";
    }
}

// Prints "<step>: ok[ detail]" or "<step>: <ERRNO>" and counts failures.
static void report(const char *step, int err, const char *detail) {
    if (err == 0) {
        printf("%s: ok%s%s\n", step, detail[0] ? " " : "", detail);
    } else {
        printf("%s: %s\n", step, errno_name(err));
        failures++;
    }
}

static char *in_dir(const char *rel) {
    static char path[4][1024];  // a few live results at once (rename takes two)
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", base, rel);
    return p;
}

// Writes all of data to rel opened with flags; returns 0 or an errno value.
static int write_file(const char *rel, int flags, const char *data, size_t len) {
    int fd = open(in_dir(rel), flags, 0644);
    if (fd < 0) return errno;
    for (size_t done = 0; done < len;) {
        ssize_t w = write(fd, data + done, len - done);
        if (w < 0) {
            int err = errno;
            close(fd);
            return err;
        }
        done += (size_t)w;
    }
    return close(fd) == 0 ? 0 : errno;
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

// Prints one line per entry under rel, depth first, names sorted: "f <path> <size>" or "d <path>".
static void list_tree(const char *rel) {
    DIR *dir = opendir(rel[0] ? in_dir(rel) : base);
    if (dir == NULL) {
        report("opendir", errno, "");
        return;
    }
    char *names[256];
    size_t count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL && count < 256) {
        if (strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0)
            names[count++] = strdup(entry->d_name);
    }
    closedir(dir);
    qsort(names, count, sizeof names[0], compare_names);
    for (size_t i = 0; i < count; i++) {
        char child[1024];
        snprintf(child, sizeof child, "%s%s%s", rel, rel[0] ? "/" : "", names[i]);
        struct stat st;
        if (stat(in_dir(child), &st) != 0) {
            report(child, errno, "");
        } else if (S_ISDIR(st.st_mode)) {
            printf("d %s\n", child);
            list_tree(child);
        } else {
            printf("f %s %lld\n", child, (long long)st.st_size);
        }
        free(names[i]);
    }
}

static uint64_t fnv1a64(const unsigned char *data, size_t len) {
    uint64_t hash = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) hash = (hash ^ data[i]) * 0x100000001b3ULL;
    return hash;
}

static unsigned char input[1 << 20];

int main(int argc, char **argv) {
    base = argc > 1 ? argv[1] : ".";
    char detail[128];

    // 1. read in.txt whole
    size_t len = 0;
    int err = 0;
    int fd = open(in_dir("in.txt"), O_RDONLY);
    if (fd < 0) {
        err = errno;
    } else {
        ssize_t n;
        while ((n = read(fd, input + len, sizeof input - len)) > 0) len += (size_t)n;
        if (n < 0) err = errno;
        else if (len == sizeof input) err = EFBIG;
        close(fd);
    }
    snprintf(detail, sizeof detail, "%zu bytes fnv1a64 %016llx", len, (unsigned long long)fnv1a64(input, len));
    report("read in.txt", err, detail);

    // 2. copy it to copy.txt (what was read, even if that is nothing)
    snprintf(detail, sizeof detail, "%zu bytes", len);
    report("write copy.txt", write_file("copy.txt", O_WRONLY | O_CREAT | O_TRUNC, (char *)input, len), detail);

    // 3. append one line to log.txt, creating it if missing
    const char line[] = "fs_ops ran\n";
    report("append log.txt", write_file("log.txt", O_WRONLY | O_CREAT | O_APPEND, line, strlen(line)), "");

    // 4. mkdir sub
    report("mkdir sub", mkdir(in_dir("sub"), 0755) == 0 ? 0 : errno, "");

    // 5. write sub/a.txt
    const char a[] = "hello\n";
    report("write sub/a.txt", write_file("sub/a.txt", O_WRONLY | O_CREAT | O_TRUNC, a, strlen(a)), "");

    // 6. the tree so far
    printf("tree:\n");
    list_tree("");

    // 7. rename copy.txt -> sub/moved.txt
    report("rename copy.txt sub/moved.txt", rename(in_dir("copy.txt"), in_dir("sub/moved.txt")) == 0 ? 0 : errno, "");

    // 8. unlink sub/a.txt
    report("unlink sub/a.txt", unlink(in_dir("sub/a.txt")) == 0 ? 0 : errno, "");

    // 9. the tree left behind
    printf("tree:\n");
    list_tree("");

    printf("failures %d\n", failures);
    return failures == 0 ? 0 : 1;
}
