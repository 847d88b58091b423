/* rr's native host calls: clocks and random, run / record / replay, in C.
 *
 * The readable reference is Python: rr/host/clocks.py and rr/host/random.py behind rr/tap.py.
 * This file implements the same tap semantics for those calls on the common path only, and
 * hands every unusual case back to the Python path before it has changed anything:
 *
 *   - the host-call budget is near (a stop, a replayed stop, --until): the counted Python path
 *     (runner._counted) decides, with its exact refusals and wake-ups;
 *   - recording: a call not yet in the trace's call table (its definition frame comes first),
 *     a writer that failed or is not plain CBOR, a contended lock, a failed write;
 *   - replay: an event that is not exactly the one this call expects with a value this call
 *     can hand over (wrong call or arguments, a failed event, a value out of range, the end of
 *     the trace, a monotonic clock going back): the Python Replayer then reports it, with the
 *     same message and exit status, because nothing was consumed.
 *
 * One trace writer: recording appends its frames through the same TraceWriter, under the same
 * SharedWriter lock, continuing the same CRC chain, bumping the same counters, so events stay
 * in call order and the bytes are those the Python encoder writes (rr/trace/cbor.py).
 * Replay consumes from the same Replayer cursor (its read-ahead deque).
 *
 * The wasmtime C API is reached through function addresses handed over by rr/native.py (the
 * wheel ships no headers); the value layout is checked there (32-byte values, payload at 8).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <pthread.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <stdint.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------ wasmtime's value layout */

typedef struct { size_t size; uint8_t *data; } byte_vec;
typedef struct val val;
typedef struct { size_t size; val *data; } val_list;        /* list and tuple */
typedef struct entry entry;
typedef struct { size_t size; entry *data; } val_record;

struct val {
    uint8_t kind;
    union {
        uint64_t u64;
        uint32_t u32;
        uint8_t u8;
        val_list list;
        val_record record;
        uint8_t pad[24];
    } of;
};
struct entry { byte_vec name; val v; };

_Static_assert(sizeof(val) == 32, "wasmtime_component_val_t is 32 bytes");
_Static_assert(sizeof(entry) == 48, "wasmtime_component_valrecord_entry_t is 48 bytes");

enum { K_U8 = 2, K_U32 = 6, K_U64 = 8, K_LIST = 13, K_RECORD = 14, K_TUPLE = 15 };

typedef void *(*callback_fn)(void *env, void *ctx, void *ty, val *args, size_t nargs,
                             val *results, size_t nresults);
typedef void (*finalizer_fn)(void *env);

static void (*list_new_uninit)(val_list *out, size_t n);
static void (*tuple_new_uninit)(val_list *out, size_t n);
static void (*record_new_uninit)(val_record *out, size_t n);
static void (*byte_vec_new)(byte_vec *out, size_t n, const uint8_t *data);
static void *(*error_new)(const char *message);
static int api_ready;

/* ------------------------------------------------------------------ the host-call counter */

/* HostContext.calls / .budget live here so that C and Python count the same calls. */
/* mono_last / mono_seen: replay's last monotonic reading (rr/host/clocks.py _not_before), here so
 * that a native replay checks and moves it without the GIL. */
typedef struct {
    PyObject_HEAD
    long long calls;
    long long budget;
    unsigned long long mono_last;
    int mono_seen;
} Counter;

static PyMemberDef counter_members[] = {
    {"calls", T_LONGLONG, offsetof(Counter, calls), 0, "host calls the guest has made"},
    {"budget", T_LONGLONG, offsetof(Counter, budget), 0, "calls allowed (see HostContext)"},
    {"mono_last", T_ULONGLONG, offsetof(Counter, mono_last), 0, "replay: the last monotonic reading"},
    {"mono_seen", T_INT, offsetof(Counter, mono_seen), 0, "replay: whether mono_last is set"},
    {NULL},
};

static int counter_init(Counter *self, PyObject *args, PyObject *kw) {
    self->calls = 0;
    self->budget = PY_LLONG_MAX;
    self->mono_last = 0;
    self->mono_seen = 0;
    return 0;
}

static PyTypeObject CounterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rr._native.Counter",
    .tp_basicsize = sizeof(Counter),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)counter_init,
    .tp_members = counter_members,
    .tp_doc = "The host-call counter shared by the Python and the native path.",
};


/* ------------------------------------------------------------------ the mapped trace sink */

/* A trace file written through a shared mapping: appending a record is a memcpy, no system
 * call, and the pages belong to the file, so they survive a kill -9 of the process. The file
 * is extended ahead in chunks with posix_fallocate (blocks reserved: a full disk is an error
 * here, never a SIGBUS later); a killed recording therefore leaves zero bytes after its last
 * record, which the reader takes for the unwritten end (rr/trace/cbor.py). Each record is
 * copied from its second byte on and its first byte stored last: until then the record's
 * place still starts with 0x00, so a record cut short by the kill is never half-visible
 * behind a valid frame head. close() truncates the file to the records written. */

#define MAP_CHUNK ((size_t)1 << 20)

typedef struct MapSink_ {
    PyObject_HEAD
    int fd;
    uint8_t *base;     /* the mapping: file offsets [map_start, map_end) */
    off_t map_start, map_end;
    off_t used;        /* end of the records written */
    off_t pwritten;    /* end of the page holding the end of the last record written with pwrite */
    off_t flushing;    /* writeback is started up to here (see mapsink_reserve) */
    int closed;
} MapSink;

static long page_size;

static int mapsink_reserve(MapSink *m, size_t n) {
    if (m->used + (off_t)n <= m->map_end) return 0;
    off_t start = m->used & ~(off_t)(page_size - 1);
    off_t want = m->used + (off_t)n + (off_t)MAP_CHUNK;
    want = (want + page_size - 1) & ~(off_t)(page_size - 1);
    int err = posix_fallocate(m->fd, m->used, want - m->used);
    if (err == ENOSPC) {   /* a nearly full disk: reserve no more than this record's pages */
        want = (m->used + (off_t)n + page_size - 1) & ~(off_t)(page_size - 1);
        err = posix_fallocate(m->fd, m->used, want - m->used);
    }
    if (err != 0) { errno = err; return -1; }
#ifdef SYNC_FILE_RANGE_WRITE
    /* The whole pages behind the last record are never written again: their writeback starts
     * now, not in close()'s fsync (10 MiB of trace: ~8-15 ms of fsync at the end of a
     * recording, ~1-2 ms left after this). Advisory: close()'s fsync still makes it durable
     * and reports any error. */
    off_t whole = m->used & ~(off_t)(page_size - 1);
    if (whole > m->flushing) {
        (void)sync_file_range(m->fd, m->flushing, whole - m->flushing, SYNC_FILE_RANGE_WRITE);
        m->flushing = whole;
    }
#endif
    void *p = mmap(NULL, (size_t)(want - start), PROT_READ | PROT_WRITE, MAP_SHARED, m->fd, start);
    if (p == MAP_FAILED) return -1;
    if (m->base != NULL) munmap(m->base, (size_t)(m->map_end - m->map_start));
    m->base = p;
    m->map_start = start;
    m->map_end = want;
    return 0;
}

#define PWRITE_MIN ((size_t)16 << 10)

static int pwrite_all(int fd, const uint8_t *data, size_t n, off_t at) {
    while (n > 0) {
        ssize_t w = pwrite(fd, data, n, at);
        if (w < 0) { if (errno == EINTR) continue; return -1; }
        data += w; n -= (size_t)w; at += w;
    }
    return 0;
}

/* The record of n bytes onto the mapped pages (room reserved for `span` >= n), its first byte
 * last: the bytes past n are copied too, so they must be the zeros already there (record_small
 * copies its whole fixed-size buffer). */
static inline void mapped_copy_span(MapSink *m, const uint8_t *data, size_t n, size_t span) {
    uint8_t *at = m->base + (m->used - m->map_start);
    memcpy(at + 1, data + 1, span - 1);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);   /* the first byte goes last, also for the compiler */
    __atomic_store_n(at, data[0], __ATOMIC_RELEASE);
    m->used += (off_t)n;
}

static inline void mapped_copy(MapSink *m, const uint8_t *data, size_t n) {
    mapped_copy_span(m, data, n, n);
}

/* 0, or -1 with errno set (nothing written). */
static int mapsink_append_slow(MapSink *m, const uint8_t *data, size_t n);

static inline int mapsink_append(MapSink *m, const uint8_t *data, size_t n) {
    /* the common case: a small record on mapped pages no pwrite wrote */
    if (!m->closed && n > 0 && n < PWRITE_MIN && m->used + (off_t)n <= m->map_end && m->used >= m->pwritten) {
        mapped_copy(m, data, n);
        return 0;
    }
    return mapsink_append_slow(m, data, n);
}

static int mapsink_append_slow(MapSink *m, const uint8_t *data, size_t n) {
    if (m->closed) { errno = EBADF; return -1; }
    if (n == 0) return 0;
    if (mapsink_reserve(m, n) < 0) return -1;
    if (n >= PWRITE_MIN || m->used < m->pwritten) {
        /* A large record (socket and stream bytes): copied into the file's pages by the kernel,
         * which costs a fraction of faulting each fresh page of the mapping in (20 MiB: ~4 ms
         * against 25-50 ms); and a small one on a page such a record wrote, which the mapping
         * would fault in again (that fault cost more than the large record's pwrite). The same
         * pages, the same order: the first byte still goes last. */
        if (pwrite_all(m->fd, data + 1, n - 1, m->used + 1) < 0 || pwrite_all(m->fd, data, 1, m->used) < 0)
            return -1;
        m->used += (off_t)n;
        m->pwritten = (m->used + page_size - 1) & ~(off_t)(page_size - 1);
        return 0;
    }
    mapped_copy(m, data, n);
    return 0;
}

static int mapsink_init(MapSink *self, PyObject *args, PyObject *kw) {
    int fd;
    if (!PyArg_ParseTuple(args, "i", &fd)) return -1;
    off_t end = lseek(fd, 0, SEEK_END);
    if (end < 0) { PyErr_SetFromErrno(PyExc_OSError); return -1; }
    self->fd = fd;
    self->used = self->map_end = self->map_start = end;
    self->pwritten = 0;
    self->flushing = end & ~(off_t)(page_size - 1);
    self->base = NULL;
    self->closed = 0;
    return 0;
}

static PyObject *mapsink_write(MapSink *self, PyObject *arg) {
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0) return NULL;
    /* With the GIL held, as every other MapSink method runs: a write without it measured no
     * faster (benchmarks/README.md, third round) and would let close() unmap under a copy. */
    int r = mapsink_append(self, b.buf, (size_t)b.len);
    PyBuffer_Release(&b);
    if (r < 0) return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static PyObject *mapsink_reserve_py(MapSink *self, PyObject *arg) {
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n < 0) return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_ValueError, "negative size");
    if (mapsink_reserve(self, (size_t)n) < 0) return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static int mapsink_finish(MapSink *self) {
    if (self->closed) return 0;
    self->closed = 1;
    if (self->base != NULL) munmap(self->base, (size_t)(self->map_end - self->map_start));
    self->base = NULL;
    return ftruncate(self->fd, self->used);
}

static PyObject *mapsink_close(MapSink *self, PyObject *unused) {
    if (mapsink_finish(self) < 0) return PyErr_SetFromErrno(PyExc_OSError);
    Py_RETURN_NONE;
}

static void mapsink_dealloc(MapSink *self) {
    mapsink_finish(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef mapsink_methods[] = {
    {"write", (PyCFunction)mapsink_write, METH_O, "append one record (no system call)"},
    {"reserve", (PyCFunction)mapsink_reserve_py, METH_O, "extend and map the file for n more bytes"},
    {"close", (PyCFunction)mapsink_close, METH_NOARGS, "unmap and truncate the file to the records written"},
    {NULL},
};

static PyMemberDef mapsink_members[] = {
    {"used", T_LONGLONG, offsetof(MapSink, used), READONLY, "end of the records written"},
    {NULL},
};

static PyTypeObject MapSinkType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rr._native.MapSink",
    .tp_basicsize = sizeof(MapSink),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)mapsink_init,
    .tp_dealloc = (destructor)mapsink_dealloc,
    .tp_methods = mapsink_methods,
    .tp_members = mapsink_members,
    .tp_doc = "MapSink(fd): appends records to the end of an open file through a shared mapping.",
};

/* ------------------------------------------------------------------ the calls */

enum {
    OP_WALL_NOW, OP_WALL_RES, OP_MONO_NOW, OP_MONO_RES,
    OP_RANDOM_BYTES, OP_RANDOM_U64, OP_INSECURE_BYTES, OP_INSECURE_U64, OP_SEED, OP_COUNT,
};
enum { MODE_RUN, MODE_RECORD, MODE_REPLAY };
enum { SHAPE_DATETIME, SHAPE_U64, SHAPE_BYTES, SHAPE_PAIR };

static const int op_shape[OP_COUNT] = {
    SHAPE_DATETIME, SHAPE_DATETIME, SHAPE_U64, SHAPE_U64,
    SHAPE_BYTES, SHAPE_U64, SHAPE_BYTES, SHAPE_U64, SHAPE_PAIR,
};

/* Larger requests go the Python way (wasmtime's hostcall fuel traps above ~2.6 MiB anyway). */
#define MAX_BYTES (1 << 20)

typedef struct {
    uint64_t a, b;        /* datetime (seconds, nanoseconds), u64 (a), pair (a, b) */
    const uint8_t *bytes; /* SHAPE_BYTES */
    size_t n;
} value;

typedef struct {
    int op, mode;
    Counter *counter;
    callback_fn py_call;  /* rr.abi's trampoline */
    void *env_counted;    /* the Python function behind runner._counted: decides refusals */
    void *env_plain;      /* the same, uncounted: for a call this side has already counted */
    finalizer_fn py_release;
    PyObject *name;       /* the trace's call name */
    PyObject *state;      /* record: a RecordTarget tuple; replay: a ReplayTarget tuple */
    PyObject *fail;       /* rr.abi.fail_call(name, exc) -> wasmtime_error_t address */
    uint64_t code;        /* this call's code in code_names (the encoder's or a cursor's call table) */
    PyObject *code_names;
    struct MapSink_ *map; /* record: the mapped sink, or NULL and the file descriptor */
    int fd;
} func;

static PyObject *s_error, *s_call, *s_args, *s_result, *s_failed, *s_consumed, *s_until, *s_peek, *one;

/* ---- live sources */


static int fill_random(uint8_t *buf, size_t n) {
    while (n) {
        ssize_t got = getrandom(buf, n, 0);
        if (got < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        buf += got;
        n -= (size_t)got;
    }
    return 0;
}

/* per thread: several guests may run at once, without the GIL; one struct, so one TLS lookup.
 * 4 KiB: getrandom costs ~2.4 us per 512 bytes here, ~11 us per 4 KiB (0.043 -> 0.022 us a u64) */
typedef struct {
    uint8_t bytes[4096];
    size_t left;
    uint64_t xs[4];   /* xoshiro256** for the insecure interfaces */
    int xs_seeded;
} pool_t;
/* A module loaded with dlopen reaches a thread-local of the default model through
 * __tls_get_addr (~20 instructions a call); one of the initial-exec model is a load off %fs,
 * but then the module's whole TLS block comes out of the small static space glibc keeps for
 * dlopen: so that block is this one pointer, and each thread's pool is on the heap (freed
 * with the thread, by the key's destructor). */
#ifdef __GLIBC__
static __thread pool_t *pool_ptr __attribute__((tls_model("initial-exec")));
#else   /* other C libraries may keep no static TLS space for dlopen: the default model */
static __thread pool_t *pool_ptr;
#endif
static pthread_key_t pool_key;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void pool_key_init(void) { (void)pthread_key_create(&pool_key, free); }

/* NULL: out of memory (the call goes the Python way) */
static pool_t *this_pool(void) {
    pool_t *p = pool_ptr;
    if (__builtin_expect(p != NULL, 1)) return p;
    (void)pthread_once(&pool_once, pool_key_init);
    if ((p = calloc(1, sizeof *p)) == NULL) return NULL;
    (void)pthread_setspecific(pool_key, p);
    return pool_ptr = p;
}

/* inline: with a constant n (a u64, 8) the copies are fixed-size and the size test folds away */
static inline int secure_bytes(uint8_t *out, size_t n) {
    if (n > sizeof ((pool_t *)0)->bytes / 2) return fill_random(out, n);
    pool_t *pool = this_pool();
    if (pool == NULL) return -1;
    if (pool->left < n) {
        if (fill_random(pool->bytes, sizeof pool->bytes) < 0) return -1;
        pool->left = sizeof pool->bytes;
    }
    memcpy(out, pool->bytes + sizeof pool->bytes - pool->left, n);
    memset(pool->bytes + sizeof pool->bytes - pool->left, 0, n);   /* handed out once */
    pool->left -= n;
    return 0;
}

static int secure_u64(uint64_t *out) {
    return secure_bytes((uint8_t *)out, 8);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static int insecure_u64(uint64_t *out) {
    pool_t *pool = this_pool();
    if (pool == NULL) return -1;
    uint64_t *xs = pool->xs;
    if (!pool->xs_seeded) {
        if (fill_random((uint8_t *)xs, sizeof pool->xs) < 0) return -1;
        xs[0] |= 1;
        pool->xs_seeded = 1;
    }
    uint64_t r = rotl(xs[1] * 5, 7) * 9, t = xs[1] << 17;
    xs[2] ^= xs[0]; xs[3] ^= xs[1]; xs[1] ^= xs[2]; xs[0] ^= xs[3];
    xs[2] ^= t; xs[3] = rotl(xs[3], 45);
    *out = r;
    return 0;
}

static int insecure_bytes(uint8_t *out, size_t n) {
    while (n) {
        uint64_t r;
        if (insecure_u64(&r) < 0) return -1;
        size_t k = n < 8 ? n : 8;
        memcpy(out, &r, k);
        out += k;
        n -= k;
    }
    return 0;
}

static uint64_t res_ns(clockid_t id) {
    struct timespec ts;
    if (clock_getres(id, &ts) != 0) return 1;
    uint64_t ns = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    return ns ? ns : 1;
}

/* The value the call produces live. `buf` holds up to MAX_BYTES. 0, or -1: use Python. */
static int live(int op, uint64_t n, uint8_t *buf, value *v) {
    struct timespec ts;
    switch (op) {
    case OP_WALL_NOW:
        clock_gettime(CLOCK_REALTIME, &ts);
        v->a = (uint64_t)ts.tv_sec; v->b = (uint64_t)ts.tv_nsec;
        return 0;
    case OP_WALL_RES:
        v->a = 0; v->b = res_ns(CLOCK_REALTIME);
        return 0;
    case OP_MONO_NOW:
        clock_gettime(CLOCK_MONOTONIC, &ts);
        v->a = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        return 0;
    case OP_MONO_RES:
        v->a = res_ns(CLOCK_MONOTONIC);
        return 0;
    case OP_RANDOM_BYTES:
    case OP_INSECURE_BYTES:
        v->bytes = buf; v->n = (size_t)n;
        return (op == OP_RANDOM_BYTES ? secure_bytes(buf, n) : insecure_bytes(buf, n));
    case OP_RANDOM_U64:
        return secure_u64(&v->a);
    case OP_INSECURE_U64:
        return insecure_u64(&v->a);
    case OP_SEED:
        return secure_u64(&v->a) < 0 ? -1 : secure_u64(&v->b);
    }
    return -1;
}

/* ---- lowering into wasmtime's result slot */

static void set_name(byte_vec *out, const char *s) { byte_vec_new(out, strlen(s), (const uint8_t *)s); }

static void lower(int op, const value *v, val *out) {
    switch (op_shape[op]) {
    case SHAPE_DATETIME: {
        val_record rec;
        record_new_uninit(&rec, 2);
        set_name(&rec.data[0].name, "seconds");
        rec.data[0].v.kind = K_U64;
        rec.data[0].v.of.u64 = v->a;
        set_name(&rec.data[1].name, "nanoseconds");
        rec.data[1].v.kind = K_U32;
        rec.data[1].v.of.u32 = (uint32_t)v->b;
        out->kind = K_RECORD;
        out->of.record = rec;
        return;
    }
    case SHAPE_U64:
        out->kind = K_U64;
        out->of.u64 = v->a;
        return;
    case SHAPE_BYTES: {
        val_list lst;
        list_new_uninit(&lst, v->n);
        for (size_t i = 0; i < v->n; i++) {
            memset(&lst.data[i], 0, sizeof(val));
            lst.data[i].kind = K_U8;
            lst.data[i].of.u8 = v->bytes[i];
        }
        out->kind = K_LIST;
        out->of.list = lst;
        return;
    }
    case SHAPE_PAIR: {
        val_list tup;
        tuple_new_uninit(&tup, 2);
        tup.data[0].kind = K_U64;
        tup.data[0].of.u64 = v->a;
        tup.data[1].kind = K_U64;
        tup.data[1].of.u64 = v->b;
        out->kind = K_TUPLE;
        out->of.list = tup;
        return;
    }
    }
}

/* ---- CBOR, as rr/trace/cbor.py writes it */

static inline size_t head(uint8_t *out, uint8_t major, uint64_t n) {
    if (n < 24) { out[0] = major | (uint8_t)n; return 1; }
    if (n < 0x100) { out[0] = major | 24; out[1] = (uint8_t)n; return 2; }
    if (n < 0x10000) { out[0] = major | 25; out[1] = (uint8_t)(n >> 8); out[2] = (uint8_t)n; return 3; }
    if (n < 0x100000000ull) {
        out[0] = major | 26;
        uint32_t be = __builtin_bswap32((uint32_t)n);
        memcpy(out + 1, &be, 4);
        return 5;
    }
    out[0] = major | 27;
    uint64_t be = __builtin_bswap64(n);
    memcpy(out + 1, &be, 8);
    return 9;
}

static uint32_t crc_table[8][256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

static inline uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint32_t crc_step8(uint32_t crc, const uint8_t *p) {
    uint32_t one = le32(p) ^ crc, two = le32(p + 4);
    return crc_table[7][one & 0xff] ^ crc_table[6][(one >> 8) & 0xff] ^ crc_table[5][(one >> 16) & 0xff]
        ^ crc_table[4][one >> 24] ^ crc_table[3][two & 0xff] ^ crc_table[2][(two >> 8) & 0xff]
        ^ crc_table[1][(two >> 16) & 0xff] ^ crc_table[0][two >> 24];
}

static inline uint32_t crc_step4(uint32_t crc, const uint8_t *p) {
    uint32_t one = le32(p) ^ crc;
    return crc_table[3][one & 0xff] ^ crc_table[2][(one >> 8) & 0xff] ^ crc_table[1][(one >> 16) & 0xff]
        ^ crc_table[0][one >> 24];
}

/* zlib.crc32(data, crc), eight bytes a step (replay checks every frame it takes) */
static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    for (; n >= 8; p += 8, n -= 8) crc = crc_step8(crc, p);
    if (n >= 4) {   /* an event frame is 10-20 bytes: one step of each */
        crc = crc_step4(crc, p);
        p += 4;
        n -= 4;
    }
    while (n--) crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* crc32_update inlined for an event frame of a clock or a u64 (n < 24): no call, no loop */
static inline uint32_t crc_small(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    if (n >= 8) { crc = crc_step8(crc, p); p += 8; n -= 8; }
    if (n >= 8) { crc = crc_step8(crc, p); p += 8; n -= 8; }
    if (n >= 4) { crc = crc_step4(crc, p); p += 4; n -= 4; }
    switch (n) {   /* the last 1-3 bytes in one step each, as crc_step4 takes four */
    case 3:
        crc = (crc >> 24) ^ crc_table[2][(crc ^ p[0]) & 0xff] ^ crc_table[1][((crc >> 8) ^ p[1]) & 0xff]
            ^ crc_table[0][((crc >> 16) ^ p[2]) & 0xff];
        break;
    case 2:
        crc = (crc >> 16) ^ crc_table[1][(crc ^ p[0]) & 0xff] ^ crc_table[0][((crc >> 8) ^ p[1]) & 0xff];
        break;
    case 1:
        crc = (crc >> 8) ^ crc_table[0][(crc ^ p[0]) & 0xff];
    }
    return ~crc;
}

/* The record [code, args, result] into `rec` (room: 40 + n bytes); its length. */
static size_t encode_event(int op, uint64_t code, uint64_t n, const value *v, uint8_t *rec) {
    size_t k = 0;
    rec[k++] = 0x83;
    k += head(rec + k, 0x00, code);
    int shape = op_shape[op];
    if (shape == SHAPE_BYTES) {
        rec[k++] = 0x81;
        k += head(rec + k, 0x00, n);
        k += head(rec + k, 0x40, v->n);
        memcpy(rec + k, v->bytes, v->n);
        return k + v->n;
    }
    rec[k++] = 0x80;
    if (shape == SHAPE_U64) {
        k += head(rec + k, 0x00, v->a);
    } else {
        rec[k++] = 0x82;
        k += head(rec + k, 0x00, v->a);
        k += head(rec + k, 0x00, v->b);
    }
    return k;
}

/* ---- helpers over Python objects (the GIL is held) */

static int get_u64(PyObject *o, uint64_t *out) {
    if (!PyLong_CheckExact(o)) return -1;
    unsigned long long x = PyLong_AsUnsignedLongLong(o);
    if (x == (unsigned long long)-1 && PyErr_Occurred()) { PyErr_Clear(); return -1; }
    *out = x;
    return 0;
}

static int add_to_attr(PyObject *obj, PyObject *name, long delta) {
    PyObject *cur = PyObject_GetAttr(obj, name);
    if (cur == NULL) return -1;
    long long x = PyLong_AsLongLong(cur);
    Py_DECREF(cur);
    if (x == -1 && PyErr_Occurred()) return -1;
    PyObject *nv = PyLong_FromLongLong(x + delta);
    if (nv == NULL) return -1;
    int r = PyObject_SetAttr(obj, name, nv);
    Py_DECREF(nv);
    return r;
}

static int attr_is(PyObject *obj, PyObject *name, PyObject *expected) {
    PyObject *a = PyObject_GetAttr(obj, name);
    if (a == NULL) { PyErr_Clear(); return 0; }
    int same = a == expected;
    Py_DECREF(a);
    return same;
}

/* An exception raised by Python code this side called: reported as rr.abi's trampoline
 * reports it (the runner re-raises it), i.e. exactly as if the Python path had raised it. */
static void *fail_with_exception(func *f) {
    PyObject *exc = PyErr_GetRaisedException();
    PyObject *addr = PyObject_CallFunctionObjArgs(f->fail, f->name, exc, NULL);
    Py_XDECREF(exc);
    void *err = NULL;
    if (addr != NULL) err = PyLong_AsVoidPtr(addr);
    Py_XDECREF(addr);
    if (err == NULL) {   /* the reporter itself failed: still a failed call, never a silent one */
        PyErr_Clear();
        err = error_new("rr: a native host call failed and could not be reported");
    }
    return err;
}

/* ---- record: state = (writer, writer_state, codes, lock, sink) */

/* What the trace writers keep per trace, shared by the Python path (rr/trace/writer.py
 * TraceWriter and CborEncoder, rr/merge.py SharedWriter) and the native recorder, so both
 * continue one CRC chain and one count and no Python attribute is touched per native event. */
typedef struct {
    PyObject_HEAD
    unsigned int crc;         /* CborEncoder: the CRC chain so far */
    long long written;        /* TraceWriter.events_written */
    int open;                 /* TraceWriter: at its events, no write failed */
    int guest_open;           /* SharedWriter: neither sealed (a stop) nor finished (the outcome) */
    long long guest_events;   /* SharedWriter.events: the guest's own events written */
} WriterState;

static int writerstate_init(WriterState *self, PyObject *args, PyObject *kw) {
    self->crc = 0;
    self->written = 0;
    self->open = 0;
    self->guest_open = 1;
    self->guest_events = 0;
    return 0;
}

static PyMemberDef writerstate_members[] = {
    {"crc", T_UINT, offsetof(WriterState, crc), 0, "the CRC chain so far"},
    {"written", T_LONGLONG, offsetof(WriterState, written), 0, "events written"},
    {"open", T_INT, offsetof(WriterState, open), 0, "whether events may be written"},
    {"guest_open", T_INT, offsetof(WriterState, guest_open), 0, "whether the guest's events are written"},
    {"guest_events", T_LONGLONG, offsetof(WriterState, guest_events), 0, "the guest's own events written"},
    {NULL},
};

static PyTypeObject WriterStateType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rr._native.WriterState",
    .tp_basicsize = sizeof(WriterState),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)writerstate_init,
    .tp_members = writerstate_members,
    .tp_doc = "A trace writer's CRC chain, counts and flags (rr/trace/writer.py).",
};

/* The SharedWriter's lock: a plain lock Python uses with `with`, that the native recorder
 * takes without a method call (and never waits for: contended, the call goes the Python way).
 * A futex word (0 free, 1 held, 2 held and waited for): taking and letting go of it uncontended
 * is one atomic instruction each (PyThread's lock also reads the clock; a pthread mutex is two
 * calls' worth more). */
typedef struct {
    PyObject_HEAD
    int state;
} Lock;

static inline int lock_try(Lock *l) {
    int free_ = 0;
    return __atomic_compare_exchange_n(&l->state, &free_, 1, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

static inline void lock_unlock(Lock *l) {
    if (__atomic_exchange_n(&l->state, 0, __ATOMIC_RELEASE) == 2)
        syscall(SYS_futex, &l->state, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static PyObject *lock_acquire(Lock *self, PyObject *args) {
    if (lock_try(self)) Py_RETURN_TRUE;
    for (;;) {   /* waits without the GIL, a while at a time: signals are handled between (as threading.Lock) */
        if (__atomic_exchange_n(&self->state, 2, __ATOMIC_ACQUIRE) == 0) Py_RETURN_TRUE;
        struct timespec wait = {0, 20 * 1000 * 1000};
        long r;
        int e;
        Py_BEGIN_ALLOW_THREADS
        r = syscall(SYS_futex, &self->state, FUTEX_WAIT_PRIVATE, 2, &wait, NULL, 0);
        e = errno;
        Py_END_ALLOW_THREADS
        if (r < 0 && e != EAGAIN && e != EINTR && e != ETIMEDOUT) { errno = e; return PyErr_SetFromErrno(PyExc_OSError); }
        if (r < 0 && e != EAGAIN && PyErr_CheckSignals() < 0) return NULL;
    }
}

static PyObject *lock_release(Lock *self, PyObject *args) {
    if (__atomic_load_n(&self->state, __ATOMIC_RELAXED) == 0) {
        PyErr_SetString(PyExc_RuntimeError, "release unlocked lock");
        return NULL;
    }
    lock_unlock(self);
    Py_RETURN_NONE;
}

static PyObject *lock_locked(Lock *self, PyObject *unused) {
    return PyBool_FromLong(__atomic_load_n(&self->state, __ATOMIC_RELAXED) != 0);
}

static PyMethodDef lock_methods[] = {
    {"acquire", (PyCFunction)lock_acquire, METH_NOARGS, "wait for the lock and take it"},
    {"release", (PyCFunction)lock_release, METH_NOARGS, "let go of the lock"},
    {"locked", (PyCFunction)lock_locked, METH_NOARGS, "whether the lock is held"},
    {"__enter__", (PyCFunction)lock_acquire, METH_NOARGS, NULL},
    {"__exit__", (PyCFunction)lock_release, METH_VARARGS, NULL},
    {NULL},
};

static PyTypeObject LockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rr._native.Lock",
    .tp_basicsize = sizeof(Lock),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_methods = lock_methods,
    .tp_doc = "The trace's write lock (rr/merge.py SharedWriter), taken by native recording too.",
};

/* R_SINK: a MapSink, or the file descriptor (int) a plain Sink writes to */
enum { R_WRITER, R_STATE, R_CODES, R_LOCK, R_SINK, R_SIZE };

static int write_all(int fd, const uint8_t *p, size_t n) {
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* This call's code in the trace's call table, looked up once (it never changes); the GIL is
 * held. 1: known, 0: not yet (the first event of this call: its definition frame comes from
 * Python), -1: an exception is set. */
static int record_code(func *f) {
    PyObject *codes = PyTuple_GET_ITEM(f->state, R_CODES);
    PyObject *code_obj = PyDict_GetItemWithError(codes, f->name);   /* borrowed */
    if (code_obj == NULL) return PyErr_Occurred() ? -1 : 0;
    if (get_u64(code_obj, &f->code) < 0) return 0;
    f->code_names = codes;
    return 1;
}

/* 0: recorded (or dropped as SharedWriter.write_event drops it after a stop), 1: use Python
 * (nothing was written), -1: failed, *err is the error for wasmtime. Needs no GIL (this call's
 * code is known): the writer's state is C's and the SharedWriter lock is held throughout, so the
 * frame is ordered with the proxy thread's flow records as the Python path's are. */
static int record_event(func *f, uint64_t n, const value *v, void **err) {
    PyObject **st = &PyTuple_GET_ITEM(f->state, 0);
    WriterState *ws = (WriterState *)st[R_STATE];
    Lock *lock = (Lock *)st[R_LOCK];
    if (!lock_try(lock)) return 1;   /* the proxy's thread is writing */
    int rc = 1;
    uint8_t small[256];
    uint8_t *frame = small;
    if (!ws->guest_open) {
        rc = 0;   /* the stop counted the events before it */
        goto out;
    }
    if (!ws->open) goto out;
    size_t need = 9 + 48 + (op_shape[f->op] == SHAPE_BYTES ? v->n : 0) + 4;
    if (need > sizeof small && (frame = malloc(need)) == NULL) goto out;
    /* the record at frame + 9, its head right before it */
    size_t rec_len = encode_event(f->op, f->code, n, v, frame + 9);
    uint8_t h[9];
    size_t hl = head(h, 0x40, rec_len + 4);
    uint8_t *at = frame + 9 - hl;
    memcpy(at, h, hl);
    size_t len = hl + rec_len;
    uint32_t crc = crc32_update(ws->crc, at, len);
    for (int i = 0; i < 4; i++) at[len + i] = (uint8_t)(crc >> (24 - 8 * i));
    len += 4;

    int wrote = f->map != NULL ? mapsink_append(f->map, at, len) : write_all(f->fd, at, len);
    if (wrote < 0) {   /* as TraceWriter._write: the writer keeps the error and fails from now on */
        int e = errno;
        ws->open = 0;
        PyGILState_STATE g = PyGILState_Ensure();
        PyObject *writer = st[R_WRITER];
        PyObject *oserr = PyObject_CallFunction(PyExc_OSError, "is", e, strerror(e));
        if (oserr != NULL && PyObject_SetAttr(writer, s_error, oserr) == 0) {
            PyObject *failure = PyObject_CallMethod(writer, "_failure", NULL);
            if (failure != NULL) {
                PyErr_SetObject((PyObject *)Py_TYPE(failure), failure);
                Py_DECREF(failure);
            }
        }
        Py_XDECREF(oserr);
        *err = fail_with_exception(f);
        PyGILState_Release(g);
        rc = -1;
        goto out;
    }
    ws->crc = crc;
    ws->written++;
    ws->guest_events++;
    rc = 0;
out:
    if (frame != small) free(frame);
    lock_unlock(lock);
    return rc;
}

/* The frame of a clock's or a u64's event into fr[0..32) (zeroed first) when its record head
 * is one byte (a code below 24, the common case); its length (the CRC chained from `crc` into
 * *crc_out), or 0: encode_event's. */
static inline size_t small_frame(int op, uint64_t code, const value *v, uint32_t crc, uint8_t fr[32],
                                 uint32_t *crc_out) {
    if (code >= 24) return 0;
    memset(fr, 0, 32);
    size_t k = 1;
    fr[k++] = 0x83;
    fr[k++] = (uint8_t)code;
    fr[k++] = 0x80;
    if (op_shape[op] == SHAPE_U64) {
        k += head(fr + k, 0x00, v->a);
    } else {
        fr[k++] = 0x82;
        k += head(fr + k, 0x00, v->a);
        k += head(fr + k, 0x00, v->b);
    }
    if (k - 1 + 4 >= 24) return 0;   /* a frame head of more than one byte */
    fr[0] = (uint8_t)(0x40 | (k - 1 + 4));
    uint32_t c = crc_small(crc, fr, k);
    uint32_t be = __builtin_bswap32(c);
    memcpy(fr + k, &be, 4);
    *crc_out = c;
    return k + 4;
}

/* record_event for a clock or a u64 onto the mapped sink, the common case of each call:
 * 0: recorded (or dropped after a stop), 1: use Python, 2: use record_event. The frame is
 * copied whole from its zeroed 32-byte buffer: the bytes past the record land on the sink's
 * zero bytes after its end (mapsink_append's common case holds: no pwrite wrote there), as
 * zeros, and the record's first byte still goes last. */
static int record_small(func *f, const value *v) {
    PyObject **st = &PyTuple_GET_ITEM(f->state, 0);
    WriterState *ws = (WriterState *)st[R_STATE];
    Lock *lock = (Lock *)st[R_LOCK];
    MapSink *m = f->map;
    if (!lock_try(lock)) return 1;   /* the proxy's thread is writing */
    int rc = 0;
    if (!ws->guest_open) goto out;   /* the stop counted the events before it */
    rc = 2;
    if (!ws->open || m->closed || m->used < m->pwritten || m->used + 32 > m->map_end) goto out;
    uint8_t fr[32];
    uint32_t crc;
    size_t len = small_frame(f->op, f->code, v, ws->crc, fr, &crc);
    if (len == 0) goto out;
    mapped_copy_span(m, fr, len, sizeof fr);
    ws->crc = crc;
    ws->written++;
    ws->guest_events++;
    rc = 0;
out:
    lock_unlock(lock);
    return rc;
}

/* ---- replay: state = (replayer, ahead, popleft, behind_append, source or None, progress)
 * progress: the replayer's counts (.read, .consumed): a Python object, or the cursor */

enum { P_REPLAYER, P_AHEAD, P_POPLEFT, P_BEHIND_APPEND, P_SOURCE, P_PROGRESS, P_SIZE };

/* The next event's value if it is exactly what this call expects. 0: consumed into *v
 * (*keep holds the Python value the bytes point into), 1: use Python, -1: exception set. */
static int replay_event(func *f, uint64_t n, value *v, PyObject **keep) {
    PyObject **st = &PyTuple_GET_ITEM(f->state, 0);
    PyObject *replayer = st[P_REPLAYER], *ahead = st[P_AHEAD];
    if (!attr_is(replayer, s_until, Py_None)) return 1;
    Py_ssize_t len = PyObject_Size(ahead);
    if (len < 0) return -1;
    if (len == 0) {
        PyObject *r = PyObject_CallMethodObjArgs(replayer, s_peek, one, NULL);
        if (r == NULL) return -1;
        Py_DECREF(r);
        len = PyObject_Size(ahead);
        if (len <= 0) return len < 0 ? -1 : 1;   /* the trace has no more events: Python says so */
    }
    PyObject *pair = PySequence_GetItem(ahead, 0);
    if (pair == NULL) return -1;
    int rc = 1;
    PyObject *event = PyTuple_Check(pair) && PyTuple_GET_SIZE(pair) == 2 ? PyTuple_GET_ITEM(pair, 1) : NULL;
    PyObject *call = NULL, *args = NULL, *result = NULL, *failed = NULL;
    if (event == NULL) goto out;
    if ((call = PyObject_GetAttr(event, s_call)) == NULL || (args = PyObject_GetAttr(event, s_args)) == NULL
        || (result = PyObject_GetAttr(event, s_result)) == NULL
        || (failed = PyObject_GetAttr(event, s_failed)) == NULL) {
        rc = -1;
        goto out;
    }
    if (failed != Py_False) goto out;
    if (call != f->name && !(PyUnicode_CheckExact(call) && PyUnicode_Compare(call, f->name) == 0)) {
        if (PyErr_Occurred()) PyErr_Clear();
        goto out;
    }
    int shape = op_shape[f->op];
    if (!PyList_CheckExact(args)) goto out;
    if (shape == SHAPE_BYTES) {
        uint64_t got;
        if (PyList_GET_SIZE(args) != 1 || get_u64(PyList_GET_ITEM(args, 0), &got) < 0 || got != n) goto out;
        if (!PyBytes_CheckExact(result) || (uint64_t)PyBytes_GET_SIZE(result) != n) goto out;
        v->bytes = (const uint8_t *)PyBytes_AS_STRING(result);
        v->n = (size_t)n;
    } else {
        if (PyList_GET_SIZE(args) != 0) goto out;
        if (shape == SHAPE_U64) {
            if (get_u64(result, &v->a) < 0) goto out;
        } else {
            if (!PyList_CheckExact(result) || PyList_GET_SIZE(result) != 2) goto out;
            if (get_u64(PyList_GET_ITEM(result, 0), &v->a) < 0 || get_u64(PyList_GET_ITEM(result, 1), &v->b) < 0)
                goto out;
            if (shape == SHAPE_DATETIME && v->b >= 1000000000u) goto out;
        }
    }
    if (f->op == OP_MONO_NOW) {   /* the clock never goes back (clocks._not_before) */
        if (f->counter->mono_seen && v->a < f->counter->mono_last) goto out;
    }
    PyObject *popped = PyObject_CallNoArgs(st[P_POPLEFT]);
    if (popped == NULL) { rc = -1; goto out; }
    PyObject *consumed = NULL, *entry = NULL, *r = NULL;
    if (add_to_attr(st[P_PROGRESS], s_consumed, 1) < 0 || (consumed = PyObject_GetAttr(st[P_PROGRESS], s_consumed)) == NULL
        || !PyTuple_Check(popped) || PyTuple_GET_SIZE(popped) != 2
        || (entry = PyTuple_Pack(3, consumed, PyTuple_GET_ITEM(popped, 0), PyTuple_GET_ITEM(popped, 1))) == NULL
        || (r = PyObject_CallOneArg(st[P_BEHIND_APPEND], entry)) == NULL) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "the replayer's queue holds (index, event) pairs");
        rc = -1;
    }
    Py_XDECREF(popped); Py_XDECREF(consumed); Py_XDECREF(entry); Py_XDECREF(r);
    if (rc == -1) goto out;
    if (f->op == OP_MONO_NOW) {
        f->counter->mono_last = v->a;
        f->counter->mono_seen = 1;
    }
    *keep = result;
    result = NULL;
    rc = 0;
out:
    Py_XDECREF(call); Py_XDECREF(args); Py_XDECREF(result); Py_XDECREF(failed);
    Py_DECREF(pair);
    return rc;
}

static int cursor_take(func *f, uint64_t n, value *v, int gil);   /* below: the replay cursor */

/* ---- the callback wasmtime calls */

static void *native_call(void *env, void *ctx, void *ty, val *args, size_t nargs, val *results, size_t nresults) {
    func *f = env;
    Counter *c = f->counter;
    if (c->calls + 1 >= c->budget || nresults != 1)
        return f->py_call(f->env_counted, ctx, ty, args, nargs, results, nresults);
    uint64_t n = 0;
    if (op_shape[f->op] == SHAPE_BYTES) {
        if (nargs != 1 || args[0].kind != K_U64 || args[0].of.u64 > MAX_BYTES)
            return f->py_call(f->env_counted, ctx, ty, args, nargs, results, nresults);
        n = args[0].of.u64;
    }
    c->calls++;
    uint8_t small[64];
    uint8_t *buf = small;
    value v = {0};
    if (f->mode == MODE_RUN) {
        if (n > sizeof small && (buf = malloc(n)) == NULL) goto plain_nogil;
        if (live(f->op, n, buf, &v) < 0) goto plain_nogil;
        lower(f->op, &v, &results[0]);
        if (buf != small) free(buf);
        return NULL;
    }
    if (f->mode == MODE_RECORD) {
        if (n > sizeof small && (buf = malloc(n)) == NULL) goto plain_nogil;
        if (live(f->op, n, buf, &v) < 0) goto plain_nogil;
        void *err = NULL;
        if (f->code_names != PyTuple_GET_ITEM(f->state, R_CODES)) {
            PyGILState_STATE g = PyGILState_Ensure();
            int known = record_code(f);
            if (known < 0) err = fail_with_exception(f);
            PyGILState_Release(g);
            if (known <= 0) {
                if (buf != small) free(buf);
                return known < 0 ? err : f->py_call(f->env_plain, ctx, ty, args, nargs, results, nresults);
            }
        }
        int rc = f->map != NULL && (op_shape[f->op] == SHAPE_U64 || op_shape[f->op] == SHAPE_DATETIME)
                 ? record_small(f, &v) : 2;
        if (rc == 2) rc = record_event(f, n, &v, &err);
        if (rc > 0) goto plain_nogil;
        if (rc == 0) lower(f->op, &v, &results[0]);
        if (buf != small) free(buf);
        return err;
    }
    /* replay: straight from the cursor without the GIL when it can tell alone */
    if (cursor_take(f, n, &v, 0) == 0) {
        lower(f->op, &v, &results[0]);
        return NULL;
    }
    PyGILState_STATE g = PyGILState_Ensure();
    void *err = NULL;
    int rc;
    {
        PyObject *keep = NULL;
        rc = cursor_take(f, n, &v, 1);
        if (rc > 0) rc = replay_event(f, n, &v, &keep);
        if (rc > 0) goto plain;
        if (rc < 0) { err = fail_with_exception(f); goto done; }
        lower(f->op, &v, &results[0]);
        Py_XDECREF(keep);
    }
done:
    if (buf != small) PyMem_Free(buf);
    PyGILState_Release(g);
    return err;
plain:
    /* Handed back before anything was written or consumed: the Python path does this call
     * from the start (uncounted: it is counted already). */
    if (buf != small) PyMem_Free(buf);
    PyGILState_Release(g);
    return f->py_call(f->env_plain, ctx, ty, args, nargs, results, nresults);
plain_nogil:
    if (buf != small) free(buf);
    return f->py_call(f->env_plain, ctx, ty, args, nargs, results, nresults);
}

static void native_release_refs(func *f) {
    Py_XDECREF((PyObject *)f->counter);
    Py_XDECREF(f->name);
    Py_XDECREF(f->state);
    Py_XDECREF(f->fail);
    PyMem_RawFree(f);
}

static void native_release(void *env) {
    func *f = env;
    PyGILState_STATE g = PyGILState_Ensure();
    Py_XDECREF((PyObject *)f->counter);
    Py_XDECREF(f->name);
    Py_XDECREF(f->state);
    Py_XDECREF(f->fail);
    PyGILState_Release(g);
    f->py_release(f->env_counted);
    f->py_release(f->env_plain);
    PyMem_RawFree(f);
}


/* ------------------------------------------------------------------ reading event records */

/* event_record(buf, start, end, names) -> {"call", "args", "result", "failed"} or None.
 * The event record [code, args, result(, true)] that fills buf[start:end] exactly, decoded as
 * rr/trace/cbor.py's CborDecoder._record decodes it (cbor2 + normalize), for records made of
 * ints of at most 64 bits, bytes, UTF-8 text, definite arrays (up to 16 deep), true, false and
 * null. Anything else -- and every record that is wrong -- gives None: the Python decoder then
 * decodes it, or says what is wrong with it. */

#define MAX_FAST_DEPTH 16

typedef struct { const uint8_t *p, *end; } cursor;

static inline int read_head(cursor *c, uint8_t *major, uint64_t *arg) {
    if (c->p >= c->end) return -1;
    uint8_t b = *c->p++;
    *major = b >> 5;
    uint8_t info = b & 31;
    if (info < 24) { *arg = info; return 0; }
    if (info > 27) return -1;
    size_t k = (size_t)1 << (info - 24);
    if ((size_t)(c->end - c->p) < k) return -1;
    uint64_t v;
    if (k == 4) {   /* seconds and nanoseconds: big-endian loads, not a byte loop */
        uint32_t w;
        memcpy(&w, c->p, 4);
        v = __builtin_bswap32(w);
    } else if (k == 8) {
        memcpy(&v, c->p, 8);
        v = __builtin_bswap64(v);
    } else {
        v = 0;
        for (size_t i = 0; i < k; i++) v = (v << 8) | c->p[i];
    }
    c->p += k;
    *arg = v;
    return 0;
}

static PyObject *decode_item(cursor *c, int depth) {
    uint8_t major;
    uint64_t arg;
    const uint8_t *at = c->p;   /* the head byte: c->p[-1] after it is a float's last byte */
    if (read_head(c, &major, &arg) < 0) return NULL;
    switch (major) {
    case 0: return PyLong_FromUnsignedLongLong(arg);
    case 1: {   /* -1 - arg */
        PyObject *a = PyLong_FromUnsignedLongLong(arg);
        if (a == NULL) return NULL;
        PyObject *neg = PyNumber_Invert(a);
        Py_DECREF(a);
        return neg;
    }
    case 2:
        if ((uint64_t)(c->end - c->p) < arg) return NULL;
        c->p += arg;
        return PyBytes_FromStringAndSize((const char *)c->p - arg, (Py_ssize_t)arg);
    case 3: {
        if ((uint64_t)(c->end - c->p) < arg) return NULL;
        c->p += arg;
        PyObject *t = PyUnicode_DecodeUTF8((const char *)c->p - arg, (Py_ssize_t)arg, "strict");
        if (t == NULL) PyErr_Clear();
        return t;
    }
    case 4: {
        if (depth >= MAX_FAST_DEPTH || arg > (uint64_t)(c->end - c->p)) return NULL;
        PyObject *list = PyList_New((Py_ssize_t)arg);
        if (list == NULL) { PyErr_Clear(); return NULL; }
        for (uint64_t i = 0; i < arg; i++) {
            PyObject *item = decode_item(c, depth + 1);
            if (item == NULL) { Py_DECREF(list); return NULL; }
            PyList_SET_ITEM(list, (Py_ssize_t)i, item);
        }
        return list;
    }
    case 7:
        if (*at == 0xf4) return Py_NewRef(Py_False);
        if (*at == 0xf5) return Py_NewRef(Py_True);
        if (*at == 0xf6) return Py_NewRef(Py_None);
        return NULL;
    }
    return NULL;   /* maps, tags: the Python decoder's */
}

static PyObject *s_k_call, *s_k_args, *s_k_result, *s_k_failed;

/* The event record filling [p, end) as a raw event dict, or NULL (no exception) when it is not
 * one this decoder reads (see above). */
static PyObject *raw_event(const uint8_t *p, const uint8_t *end, PyObject *names) {
    PyObject *out = NULL, *a = NULL, *r = NULL;
    if (p >= end) return NULL;
    cursor c = {p, end};
    uint8_t first = *c.p++;
    if (first != 0x83 && first != 0x84) return NULL;
    uint8_t major;
    uint64_t code;
    if (read_head(&c, &major, &code) < 0 || major != 0 || code >= (uint64_t)PyList_GET_SIZE(names)) goto none;
    if (c.p >= c.end || (*c.p >> 5) != 4) goto none;   /* args must be an array */
    if ((a = decode_item(&c, 1)) == NULL || (r = decode_item(&c, 1)) == NULL) goto none;
    if (first == 0x84 && (c.p >= c.end || *c.p++ != 0xf5)) goto none;
    if (c.p != c.end) goto none;   /* the record must fill its frame */
    out = PyDict_New();
    if (out == NULL || PyDict_SetItem(out, s_k_call, PyList_GET_ITEM(names, (Py_ssize_t)code)) < 0
        || PyDict_SetItem(out, s_k_args, a) < 0 || PyDict_SetItem(out, s_k_result, r) < 0
        || PyDict_SetItem(out, s_k_failed, first == 0x84 ? Py_True : Py_False) < 0) {
        Py_CLEAR(out);
    }
none:
    if (out == NULL && PyErr_Occurred()) PyErr_Clear();
    Py_XDECREF(a); Py_XDECREF(r);
    return out;
}

static PyObject *py_event_record(PyObject *self, PyObject *args) {
    Py_buffer b;
    Py_ssize_t start, end;
    PyObject *names;
    if (!PyArg_ParseTuple(args, "y*nnO!", &b, &start, &end, &PyList_Type, &names)) return NULL;
    PyObject *out = NULL;
    if (start >= 0 && end <= b.len && start < end)
        out = raw_event((const uint8_t *)b.buf + start, (const uint8_t *)b.buf + end, names);
    PyBuffer_Release(&b);
    if (out == NULL) Py_RETURN_NONE;
    return out;
}

/* ------------------------------------------------------------------ the replay cursor */

/* The frames of a trace file, over a read-only mapping of it (rr/trace/cbor.py,
 * CborDecoder._mapped_records): the one position and CRC chain that both the Python reader and
 * the native calls take frames from. C takes a frame only when it is whole, its checksum
 * matches and it holds a record C decodes; anything else -- a torn or damaged frame, the zero
 * tail of a killed recording, a call definition, an outcome -- stays where it is for the
 * Python reader, which reads it or reports it with its own messages and positions.
 *
 * A native call takes its event straight from here (cursor_take) only when nothing has been
 * read ahead on the Python side (the replayer's, ReadAhead's and FlowIndex's queues are
 * empty), --until is not set, the frame is exactly this call's event, and the frame after it
 * is also a native call's event: a guest event, so that the one taken is not the trace's last
 * and the recorded outcome is still read before the last event is handed out (session.ReadAhead). */

#define MAX_FRAME ((uint64_t)512 * 1024 * 1024 + 4)   /* rr/trace/records.py MAX_RECORD + the CRC */
#define CODE_CACHE 64

typedef struct {
    PyObject_HEAD
    Py_buffer buf;
    int has_buf;             /* frames may be read (not closed) */
    int exported;            /* buf is held (until dealloc) */
    Py_ssize_t pos;          /* file offset of the next frame */
    unsigned int crc;        /* the chain up to pos */
    long long events, index; /* rr/trace/reader.py iter_records' counts */
    int live;                /* native calls may take frames (the reader says when) */
    long long taken;         /* events native calls took */
    long long read, consumed;   /* the Replayer's counts (rr/tap.py), kept here once it is attached */
    struct { long long seq, index; Py_ssize_t pos; } ring[3];   /* the events native calls took last */
    int ring_next;
    PyObject *names;         /* CborDecoder._names: call code -> name */
    PyObject *native;        /* {name: op} of the native calls */
    Py_ssize_t seen_at, seen_end;   /* the last frame checked, chained from seen_in */
    uint32_t seen_in, seen_out;
    signed char code_op[CODE_CACHE];   /* -2: not looked up, -1: not a native call, else its op */
    struct parsed_ {   /* the frame cursor_take checked last as the one after its event, parsed */
        Py_ssize_t at, end;      /* at == -1: none */
        uint32_t in, out;        /* the CRC chain before and after it */
        uint8_t event;           /* 0x83 / 0x84 with a call code, else 0 */
        int8_t kind;             /* PK_*: the plain event's shape, or PK_NONE */
        int8_t nargs;
        uint64_t code, arg, a, b;
        Py_ssize_t bytes;        /* PK_BYTES: the bytes' offset in buf; a = their length */
    } next;
} Cursor;

enum { PK_NONE, PK_U64, PK_PAIR, PK_BYTES };

typedef struct { Py_ssize_t body, tail, end; uint32_t crc; } frame_t;

/* The frame whose head is at `at`: 0 when it is whole and its checksum (chained from `crc`)
 * matches, else -1 (never an exception). */
static inline int frame_at(Cursor *c, Py_ssize_t at, uint32_t crc, frame_t *fr) {
    const uint8_t *b = c->buf.buf;
    Py_ssize_t len = c->buf.len;
    if (!c->has_buf || at < 0 || at >= len) return -1;
    uint8_t h = b[at];
    uint64_t n;
    Py_ssize_t hs;
    if (h >= 0x40 && h < 0x58) {
        n = h - 0x40;
        hs = 1;
    } else if (h >= 0x58 && h <= 0x5b) {
        hs = 1 + ((Py_ssize_t)1 << (h - 0x58));
        if (len - at < hs) return -1;
        n = 0;
        for (Py_ssize_t i = 1; i < hs; i++) n = (n << 8) | b[at + i];
    } else {
        return -1;
    }
    if (n <= 4 || n > MAX_FRAME || (uint64_t)(len - at - hs) < n) return -1;
    fr->body = at + hs;
    fr->end = at + hs + (Py_ssize_t)n;
    fr->tail = fr->end - 4;
    if (at == c->seen_at && crc == c->seen_in && fr->end == c->seen_end) {
        fr->crc = c->seen_out;
        return 0;
    }
    size_t covered = (size_t)(fr->tail - at);
    uint32_t got = covered < 24 ? crc_small(crc, b + at, covered) : crc32_update(crc, b + at, covered);
    const uint8_t *t = b + fr->tail;
    if (got != ((uint32_t)t[0] << 24 | (uint32_t)t[1] << 16 | (uint32_t)t[2] << 8 | t[3])) return -1;
    c->seen_at = at; c->seen_in = crc; c->seen_end = fr->end; c->seen_out = got;
    fr->crc = got;
    return 0;
}

/* The call code of an event record at `p`: 0, or -1 (not an event). */
static inline int event_code(const uint8_t *p, const uint8_t *end, uint64_t *code) {
    cursor k = {p, end};
    if (k.p >= k.end || (*k.p != 0x83 && *k.p != 0x84)) return -1;
    k.p++;
    uint8_t major;
    return read_head(&k, &major, code) < 0 || major != 0 ? -1 : 0;
}

/* The op of the native call an event record at `p` is of, or -1 (also: not an event). */
static int event_op(Cursor *c, const uint8_t *p, const uint8_t *end) {
    uint64_t code;
    if (event_code(p, end, &code) < 0 || code >= (uint64_t)PyList_GET_SIZE(c->names)) return -1;
    if (code < CODE_CACHE && c->code_op[code] != -2) return c->code_op[code];
    PyObject *op = PyDict_GetItemWithError(c->native, PyList_GET_ITEM(c->names, (Py_ssize_t)code));
    int r = -1;
    if (op == NULL) PyErr_Clear();
    else if (PyLong_Check(op)) r = (int)PyLong_AsLong(op);
    if (code < CODE_CACHE) c->code_op[code] = (signed char)r;
    return r;
}

/* event_op without the GIL: -2 when the call's op is not cached yet. */
static int event_op_cached(Cursor *c, const uint8_t *p, const uint8_t *end) {
    uint64_t code;
    if (event_code(p, end, &code) < 0) return -1;
    return code < CODE_CACHE && c->code_op[code] != -2 ? c->code_op[code] : -2;
}

static int cursor_init(Cursor *self, PyObject *args, PyObject *kw) {
    PyObject *buffer, *names, *native;
    Py_ssize_t pos;
    unsigned int crc;
    if (!PyArg_ParseTuple(args, "OnIO!O!", &buffer, &pos, &crc, &PyList_Type, &names, &PyDict_Type, &native))
        return -1;
    if (self->exported) {
        PyErr_SetString(PyExc_RuntimeError, "Cursor already initialised");
        return -1;
    }
    if (PyObject_GetBuffer(buffer, &self->buf, PyBUF_SIMPLE) < 0) return -1;
    self->has_buf = self->exported = 1;
    self->pos = pos;
    self->crc = crc;
    self->events = self->index = 0;
    self->live = 0;
    self->taken = self->read = self->consumed = 0;
    memset(self->ring, 0, sizeof self->ring);
    self->ring_next = 0;
    self->names = Py_NewRef(names);
    self->native = Py_NewRef(native);
    self->seen_at = -1;
    memset(self->code_op, -2, sizeof self->code_op);
    self->next.at = -1;
    return 0;
}

/* close(): no frame is read from here on, but the mapping stays exported until the cursor goes
 * (its last holder being the native calls' state): a native call replays without the GIL, and a
 * guest thread a stop gave up on may still be inside one while the trace is closed. */
static void cursor_release(Cursor *self) {
    self->live = 0;
    self->has_buf = 0;
}

static void cursor_dealloc(Cursor *self) {
    cursor_release(self);
    if (self->exported) PyBuffer_Release(&self->buf);
    self->exported = 0;
    Py_XDECREF(self->names);
    Py_XDECREF(self->native);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* step() -> ("event", raw, pos) and past it, or None: the Python reader takes the frame at pos. */
static PyObject *cursor_step(Cursor *self, PyObject *unused) {
    frame_t fr;
    const uint8_t *b = self->buf.buf;
    if (frame_at(self, self->pos, self->crc, &fr) < 0 || (b[fr.body] != 0x83 && b[fr.body] != 0x84))
        Py_RETURN_NONE;
    PyObject *raw = raw_event(b + fr.body, b + fr.tail, self->names);
    if (raw == NULL) Py_RETURN_NONE;
    PyObject *out = Py_BuildValue("(sNn)", "event", raw, self->pos);
    if (out != NULL) {
        self->pos = fr.end;
        self->crc = fr.crc;
    }
    return out;
}

/* vouched() -> whether the next frame is whole, checks out and is a native call's event (so a
 * guest event: session.ReadAhead need not read it ahead). */
static PyObject *cursor_vouched(Cursor *self, PyObject *unused) {
    frame_t fr;
    const uint8_t *b = self->buf.buf;
    int ok = self->live && frame_at(self, self->pos, self->crc, &fr) == 0
             && event_op(self, b + fr.body, b + fr.tail) >= 0;
    return PyBool_FromLong(ok);
}

/* event_at(pos) -> the raw event of the frame at pos (one this cursor has passed), or None */
static PyObject *cursor_event_at(Cursor *self, PyObject *arg) {
    Py_ssize_t at = PyLong_AsSsize_t(arg);
    if (at == -1 && PyErr_Occurred()) return NULL;
    const uint8_t *b = self->buf.buf;
    uint8_t h = self->has_buf && at >= 0 && at < self->pos ? b[at] : 0;
    if (h < 0x45 || h > 0x5b) Py_RETURN_NONE;
    Py_ssize_t hs = h < 0x58 ? 1 : 1 + ((Py_ssize_t)1 << (h - 0x58));
    if (self->pos - at < hs) Py_RETURN_NONE;
    uint64_t n = h < 0x58 ? (uint64_t)(h - 0x40) : 0;
    for (Py_ssize_t i = 1; i < hs; i++) n = (n << 8) | b[at + i];
    if (n <= 4 || (uint64_t)(self->pos - at - hs) < n) Py_RETURN_NONE;
    PyObject *raw = raw_event(b + at + hs, b + at + hs + n - 4, self->names);
    if (raw == NULL) Py_RETURN_NONE;
    return raw;
}

/* recent() -> [(consumed count, trace index, frame offset)] of the last events native calls took */
static PyObject *cursor_recent(Cursor *self, PyObject *unused) {
    PyObject *out = PyList_New(0);
    for (int i = 0; out != NULL && i < 3; i++) {
        int k = (self->ring_next + i) % 3;
        if (self->ring[k].seq == 0) continue;
        PyObject *e = Py_BuildValue("(LLn)", self->ring[k].seq, self->ring[k].index, self->ring[k].pos);
        if (e == NULL || PyList_Append(out, e) < 0) Py_CLEAR(out);
        Py_XDECREF(e);
    }
    return out;
}

static PyObject *cursor_close(Cursor *self, PyObject *unused) {
    cursor_release(self);
    Py_RETURN_NONE;
}

static PyMethodDef cursor_methods[] = {
    {"step", (PyCFunction)cursor_step, METH_NOARGS, "the next frame if C reads it: (\"event\", raw, pos), else None"},
    {"vouched", (PyCFunction)cursor_vouched, METH_NOARGS, "whether the next frame is a native call's whole event"},
    {"event_at", (PyCFunction)cursor_event_at, METH_O, "the raw event of a frame already passed"},
    {"recent", (PyCFunction)cursor_recent, METH_NOARGS, "[(consumed count, index, offset)] native calls took last"},
    {"close", (PyCFunction)cursor_close, METH_NOARGS, "let go of the mapping"},
    {NULL},
};

static PyMemberDef cursor_members[] = {
    {"pos", T_PYSSIZET, offsetof(Cursor, pos), 0, "file offset of the next frame"},
    {"crc", T_UINT, offsetof(Cursor, crc), 0, "the CRC chain up to pos"},
    {"events", T_LONGLONG, offsetof(Cursor, events), 0, "events read (rr/trace/reader.py)"},
    {"index", T_LONGLONG, offsetof(Cursor, index), 0, "records read, the header being 0 (rr/trace/reader.py)"},
    {"live", T_INT, offsetof(Cursor, live), 0, "whether native calls may take frames"},
    {"taken", T_LONGLONG, offsetof(Cursor, taken), READONLY, "events native calls took"},
    {"read", T_LONGLONG, offsetof(Cursor, read), 0, "the replayer's events read"},
    {"consumed", T_LONGLONG, offsetof(Cursor, consumed), 0, "the replayer's events consumed"},
    {NULL},
};

static PyTypeObject CursorType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "rr._native.Cursor",
    .tp_basicsize = sizeof(Cursor),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)cursor_init,
    .tp_dealloc = (destructor)cursor_dealloc,
    .tp_methods = cursor_methods,
    .tp_members = cursor_members,
    .tp_doc = "Cursor(buffer, pos, crc, names, native_ops): a trace's frames from pos on.",
};

/* ---- replay straight from the cursor: source = (cursor, queue, queue, flow_index) */

enum { S_CURSOR, S_QUEUE1, S_QUEUE2, S_FLOWS, S_SIZE };

static inline int uint_at(cursor *k, uint64_t *out) {
    uint8_t major;
    return read_head(k, &major, out) < 0 || major != 0 ? -1 : 0;
}

/* Whether a read-ahead queue (a collections.deque) is empty. Without the GIL only an exact
 * deque is read, by its size field: in cursor mode no other thread reads the trace or fills
 * these queues (no replay proxy: rr/session.py), so only this thread, which is here, changes it. */
static PyTypeObject *deque_type;

static int queue_empty(PyObject *q, int gil) {
    if (Py_IS_TYPE(q, deque_type)) return Py_SIZE(q) == 0 ? 1 : 0;
    if (!gil) return 2;
    Py_ssize_t len = PyObject_Size(q);
    return len < 0 ? -1 : len == 0;
}

/* The frame at `at` (chained from `crc`) parsed as cursor_take reads it: 0, or -1 when it is not
 * whole or its checksum does not match. A frame that is not an event, or an event whose
 * arguments and result are not one of the plain shapes, parses with event or kind unset. */
static int parse_frame(Cursor *c, Py_ssize_t at, uint32_t crc, struct parsed_ *p) {
    frame_t fr;
    const uint8_t *b = c->buf.buf;
    uint8_t h = at >= 0 && at < c->buf.len ? b[at] : 0;
    if (h > 0x44 && h < 0x58 && c->buf.len - at > h - 0x40) {   /* frame_at for a one-byte head, inlined */
        fr.body = at + 1;
        fr.end = fr.body + (h - 0x40);
        fr.tail = fr.end - 4;
        fr.crc = crc_small(crc, b + at, (size_t)(fr.tail - at));
        if (fr.crc != __builtin_bswap32(le32(b + fr.tail))) return -1;
    } else if (frame_at(c, at, crc, &fr) < 0) {
        return -1;
    }
    cursor k = {b + fr.body, b + fr.tail};
    p->at = at; p->end = fr.end; p->in = crc; p->out = fr.crc;
    p->event = 0; p->kind = PK_NONE;
    uint8_t first = *k.p++;   /* a frame holds at least one byte before its CRC */
    if ((first != 0x83 && first != 0x84) || uint_at(&k, &p->code) < 0) return 0;
    p->event = first;
    if (first != 0x83 || k.p >= k.end) return 0;
    uint8_t args = *k.p++;
    if (args == 0x80) p->nargs = 0;
    else if (args == 0x81 && uint_at(&k, &p->arg) == 0) p->nargs = 1;
    else return 0;
    if (k.p >= k.end) return 0;
    uint8_t major;
    int kind = PK_NONE;
    if (*k.p == 0x82) {
        k.p++;
        if (uint_at(&k, &p->a) < 0 || uint_at(&k, &p->b) < 0) return 0;
        kind = PK_PAIR;
    } else if (read_head(&k, &major, &p->a) < 0) {
        return 0;
    } else if (major == 0) {
        kind = PK_U64;
    } else if (major == 2 && (uint64_t)(k.end - k.p) >= p->a) {
        p->bytes = k.p - b;
        k.p += p->a;
        kind = PK_BYTES;
    }
    if (k.p == k.end) p->kind = (int8_t)kind;   /* the record must fill its frame */
    return 0;
}

/* 0: the event was this call's and is consumed into *v, 1: use the other paths (nothing was
 * changed), 2: (gil == 0) it takes the GIL to tell, -1: an exception is set. Without the GIL
 * it reads only C state, immutable tuples and what queue_empty reads; a call definition not
 * yet seen, a name to compare need the GIL. The frame after the event is parsed once: it is
 * the next call's event (c->next). */
static int cursor_take(func *f, uint64_t n, value *v, int gil) {
    PyObject **st = &PyTuple_GET_ITEM(f->state, 0);
    PyObject *source = st[P_SOURCE];
    if (source == Py_None) return 1;
    PyObject **src = &PyTuple_GET_ITEM(source, 0);
    Cursor *c = (Cursor *)src[S_CURSOR];
    if (!c->live || !c->has_buf) return 1;
    if (st[P_PROGRESS] != (PyObject *)c) return 1;   /* not attached (--until) */
    PyObject *queues[3] = {st[P_AHEAD], src[S_QUEUE1], src[S_QUEUE2]};
    for (int i = 0; i < 3; i++) {
        int empty = queue_empty(queues[i], gil);
        if (empty != 1) return empty == 0 ? 1 : empty;
    }
    struct parsed_ here, *p = &c->next;
    if (p->at != c->pos || p->in != c->crc) {
        if (parse_frame(c, c->pos, c->crc, &here) < 0) return 1;
        p = &here;
    }
    if (p->event != 0x83) return 1;
    if (p->code != f->code || c->names != f->code_names) {
        if (!gil) return 2;
        if (p->code >= (uint64_t)PyList_GET_SIZE(c->names)) return 1;
        PyObject *name = PyList_GET_ITEM(c->names, (Py_ssize_t)p->code);
        if (name != f->name && !(PyUnicode_CheckExact(name) && PyUnicode_Compare(name, f->name) == 0)) {
            if (PyErr_Occurred()) PyErr_Clear();
            return 1;
        }
        f->code = p->code;
        f->code_names = c->names;
    }
    switch (op_shape[f->op]) {
    case SHAPE_BYTES:
        if (p->kind != PK_BYTES || p->nargs != 1 || p->arg != n || p->a != n) return 1;
        v->bytes = (const uint8_t *)c->buf.buf + p->bytes;
        v->n = (size_t)n;
        break;
    case SHAPE_U64:
        if (p->kind != PK_U64 || p->nargs != 0) return 1;
        v->a = p->a;
        break;
    default:
        if (p->kind != PK_PAIR || p->nargs != 0) return 1;
        if (op_shape[f->op] == SHAPE_DATETIME && p->b >= 1000000000u) return 1;
        v->a = p->a;
        v->b = p->b;
    }
    struct parsed_ next;
    if (parse_frame(c, p->end, p->out, &next) < 0 || !next.event) return 1;
    int next_op;
    if (next.code < CODE_CACHE && c->code_op[next.code] != -2) next_op = c->code_op[next.code];
    else if (!gil) return 2;
    else {
        const uint8_t *b = c->buf.buf;
        frame_t nf;
        if (frame_at(c, p->end, p->out, &nf) < 0) return 1;
        next_op = event_op(c, b + nf.body, b + nf.tail);
    }
    if (next_op < 0) return 1;
    if (f->op == OP_MONO_NOW) {   /* the clock never goes back (clocks._not_before) */
        if (f->counter->mono_seen && v->a < f->counter->mono_last) return 1;
        f->counter->mono_last = v->a;
        f->counter->mono_seen = 1;
    }
    /* Consumed: the reader's counts, FlowIndex's (it adds `taken`) and the replayer's move on
     * as if the Python path had read and handed out this event. */
    int slot = c->ring_next;
    c->ring[slot].seq = ++c->consumed;
    c->ring[slot].index = c->read++;
    c->ring[slot].pos = c->pos;
    c->ring_next = slot == 2 ? 0 : slot + 1;
    c->pos = p->end;
    c->crc = p->out;
    c->next = next;
    c->events++;
    c->index++;
    c->taken++;
    return 0;
}

static PyObject *py_setup(PyObject *self, PyObject *args) {
    unsigned long long a, b, c, d, e;
    if (!PyArg_ParseTuple(args, "KKKKK", &a, &b, &c, &d, &e)) return NULL;
    list_new_uninit = (void *)(uintptr_t)a;
    tuple_new_uninit = (void *)(uintptr_t)b;
    record_new_uninit = (void *)(uintptr_t)c;
    byte_vec_new = (void *)(uintptr_t)d;
    error_new = (void *)(uintptr_t)e;
    api_ready = a && b && c && d && e;
    Py_RETURN_NONE;
}

/* make(op, mode, counter, py_call, env_counted, env_plain, py_release, name, state, fail)
 * -> the env address for wasmtime_component_linker_instance_add_func */
static PyObject *py_make(PyObject *self, PyObject *args) {
    int op, mode;
    PyObject *counter, *name, *state, *fail;
    unsigned long long call, counted, plain, release;
    if (!PyArg_ParseTuple(args, "iiO!KKKKUOO", &op, &mode, &CounterType, &counter, &call, &counted, &plain,
                          &release, &name, &state, &fail))
        return NULL;
    if (!api_ready) return PyErr_Format(PyExc_RuntimeError, "rr._native.setup was not called");
    if (op < 0 || op >= OP_COUNT || mode < MODE_RUN || mode > MODE_REPLAY)
        return PyErr_Format(PyExc_ValueError, "bad op %d or mode %d", op, mode);
    Py_ssize_t want = mode == MODE_RECORD ? R_SIZE : mode == MODE_REPLAY ? P_SIZE : 0;
    if (mode != MODE_RUN && (!PyTuple_Check(state) || PyTuple_GET_SIZE(state) != want))
        return PyErr_Format(PyExc_TypeError, "state must be a tuple of %zd", want);
    func *f = PyMem_RawCalloc(1, sizeof(func));
    if (f == NULL) return PyErr_NoMemory();
    f->op = op;
    f->mode = mode;
    f->counter = (Counter *)Py_NewRef(counter);
    f->py_call = (callback_fn)(uintptr_t)call;
    f->env_counted = (void *)(uintptr_t)counted;
    f->env_plain = (void *)(uintptr_t)plain;
    f->py_release = (finalizer_fn)(uintptr_t)release;
    f->name = Py_NewRef(name);
    f->state = Py_NewRef(state);
    f->fail = Py_NewRef(fail);
    f->fd = -1;
    if (mode == MODE_RECORD) {
        PyObject *sink = PyTuple_GET_ITEM(state, R_SINK);
        if (Py_IS_TYPE(sink, &MapSinkType)) f->map = (MapSink *)sink;
        else f->fd = (int)PyLong_AsLong(sink);
        if (f->fd == -1 && f->map == NULL) {
            native_release_refs(f);
            return PyErr_Occurred() ? NULL : PyErr_Format(PyExc_TypeError, "the sink must be a MapSink or a file descriptor");
        }
        if (!Py_IS_TYPE(PyTuple_GET_ITEM(state, R_STATE), &WriterStateType)
            || !Py_IS_TYPE(PyTuple_GET_ITEM(state, R_LOCK), &LockType)) {
            native_release_refs(f);
            return PyErr_Format(PyExc_TypeError, "record state needs a WriterState and a Lock");
        }
    }
    if (mode == MODE_REPLAY) {
        PyObject *source = PyTuple_GET_ITEM(state, P_SOURCE);
        if (source != Py_None && (!PyTuple_Check(source) || PyTuple_GET_SIZE(source) != S_SIZE
                                  || !Py_IS_TYPE(PyTuple_GET_ITEM(source, S_CURSOR), &CursorType))) {
            native_release_refs(f);
            return PyErr_Format(PyExc_TypeError, "replay source must be None or (Cursor, queue, queue, flows)");
        }
    }
    return PyLong_FromVoidPtr(f);
}

/* The floor (benchmarks/bench_run.py): a callback that does nothing but hand back a constant of
 * the call's shape, registered like native_call; the least any host on wasmtime's component C
 * API pays per call. Not for the bytes shape. */
static void *floor_call(void *env, void *ctx, void *ty, val *args, size_t nargs, val *results, size_t nresults) {
    func *f = env;
    static const value constant = {1, 2, NULL, 0};
    if (nresults != 1 || op_shape[f->op] == SHAPE_BYTES) return error_new("rr: the floor callback has no such call");
    lower(f->op, &constant, &results[0]);
    return NULL;
}

static PyObject *py_floor_address(PyObject *self, PyObject *unused) {
    return PyLong_FromVoidPtr((void *)floor_call);
}

static PyObject *py_addresses(PyObject *self, PyObject *unused) {
    return Py_BuildValue("(NN)", PyLong_FromVoidPtr((void *)native_call), PyLong_FromVoidPtr((void *)native_release));
}

/* encode(op, code, n, a, b, data, crc) -> (frame, crc): the frame record_event writes, for tests */
static PyObject *py_encode(PyObject *self, PyObject *args) {
    int op;
    unsigned long long code, n, a, b;
    unsigned long crc;
    Py_buffer data;
    if (!PyArg_ParseTuple(args, "iKKKKy*k", &op, &code, &n, &a, &b, &data, &crc)) return NULL;
    if (op < 0 || op >= OP_COUNT || data.len > MAX_BYTES) {
        PyBuffer_Release(&data);
        return PyErr_Format(PyExc_ValueError, "bad op or data");
    }
    value v = {a, b, data.buf, (size_t)data.len};
    uint8_t fr[32];
    uint32_t small_crc;
    size_t small_len = op_shape[op] == SHAPE_U64 || op_shape[op] == SHAPE_DATETIME
                       ? small_frame(op, code, &v, (uint32_t)crc, fr, &small_crc) : 0;
    if (small_len != 0) {   /* record_small's frames */
        PyBuffer_Release(&data);
        return Py_BuildValue("(y#k)", fr, (Py_ssize_t)small_len, (unsigned long)small_crc);
    }
    uint8_t *frame = PyMem_Malloc(64 + data.len + 9);
    if (frame == NULL) { PyBuffer_Release(&data); return PyErr_NoMemory(); }
    uint8_t *rec = frame + 9;
    size_t rec_len = encode_event(op, code, n, &v, rec);
    uint8_t h[9];
    size_t hl = head(h, 0x40, rec_len + 4);
    memmove(frame + hl, rec, rec_len);
    memcpy(frame, h, hl);
    size_t len = hl + rec_len;
    uint32_t c = crc32_update((uint32_t)crc, frame, len);
    for (int i = 0; i < 4; i++) frame[len + i] = (uint8_t)(c >> (24 - 8 * i));
    PyObject *out = Py_BuildValue("(y#k)", frame, (Py_ssize_t)(len + 4), (unsigned long)c);
    PyMem_Free(frame);
    PyBuffer_Release(&data);
    return out;
}

/* ------------------------------------------------------------------ base64 for the fast byte path */

/* base64_ascii(bytes-like) -> str: what binascii.b2a_base64(data, newline=False).decode("ascii")
 * gives, written straight into an ASCII str, 3 bytes -> 2 table lookups of 12 bits each
 * (rr/host/fast_streams.py: every read of the fast byte path; CPython's encoder and the
 * decode to str cost ~4x this). The GIL is released for the bulk of it. */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static uint16_t b64_pairs[4096];
static int b64_ready;

static PyObject *py_base64_ascii(PyObject *self, PyObject *arg) {
    if (!b64_ready) {   /* under the GIL */
        for (int i = 0; i < 4096; i++) {
            uint8_t pair[2] = {(uint8_t)B64[i >> 6], (uint8_t)B64[i & 63]};
            memcpy(&b64_pairs[i], pair, 2);
        }
        b64_ready = 1;
    }
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0) return NULL;
    Py_ssize_t n = b.len;
    if (n > (PY_SSIZE_T_MAX / 4) * 3 - 3) { PyBuffer_Release(&b); return PyErr_NoMemory(); }
    PyObject *s = PyUnicode_New((n + 2) / 3 * 4, 127);
    if (s == NULL) { PyBuffer_Release(&b); return NULL; }
    uint8_t *o = PyUnicode_1BYTE_DATA(s);
    const uint8_t *p = b.buf;
    Py_ssize_t i = 0;
    Py_BEGIN_ALLOW_THREADS
    for (; i + 3 <= n; i += 3, o += 4) {
        uint32_t v = ((uint32_t)p[i] << 16) | ((uint32_t)p[i + 1] << 8) | p[i + 2];
        memcpy(o, &b64_pairs[v >> 12], 2);
        memcpy(o + 2, &b64_pairs[v & 0xfff], 2);
    }
    Py_END_ALLOW_THREADS
    if (n - i > 0) {
        uint32_t v = (uint32_t)p[i] << 16 | (n - i == 2 ? (uint32_t)p[i + 1] << 8 : 0);
        o[0] = (uint8_t)B64[v >> 18];
        o[1] = (uint8_t)B64[(v >> 12) & 63];
        o[2] = n - i == 2 ? (uint8_t)B64[(v >> 6) & 63] : '=';
        o[3] = '=';
    }
    PyBuffer_Release(&b);
    return s;
}

static PyMethodDef methods[] = {
    {"base64_ascii", py_base64_ascii, METH_O, "base64_ascii(data) -> str (base64, no newline)"},
    {"setup", py_setup, METH_VARARGS, "setup(list_new_uninit, tuple_new_uninit, record_new_uninit, byte_vec_new, error_new)"},
    {"make", py_make, METH_VARARGS, "make(op, mode, counter, call, env_counted, env_plain, release, name, state, fail)"},
    {"addresses", py_addresses, METH_NOARGS, "(callback, finalizer) addresses"},
    {"floor_address", py_floor_address, METH_NOARGS, "the benchmark's no-op callback (bench_run.py's floor)"},
    {"encode", py_encode, METH_VARARGS, "encode(op, code, n, a, b, data, crc) -> (frame, crc)"},
    {"event_record", py_event_record, METH_VARARGS, "event_record(buf, start, end, names) -> raw event dict or None"},
    {NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "rr._native", "rr's native host calls (see rr/native.py).", -1, methods,
};

#define INTERN(var, text) if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL

PyMODINIT_FUNC PyInit__native(void) {
    crc_init();
    INTERN(s_error, "error");
    INTERN(s_call, "call"); INTERN(s_args, "args"); INTERN(s_result, "result"); INTERN(s_failed, "failed");
    INTERN(s_consumed, "consumed"); INTERN(s_until, "until"); INTERN(s_peek, "_peek");
    INTERN(s_k_call, "call"); INTERN(s_k_args, "args"); INTERN(s_k_result, "result"); INTERN(s_k_failed, "failed");
    if ((one = PyLong_FromLong(1)) == NULL) return NULL;
    PyObject *collections = PyImport_ImportModule("collections");
    if (collections == NULL) return NULL;
    deque_type = (PyTypeObject *)PyObject_GetAttrString(collections, "deque");
    Py_DECREF(collections);
    if (deque_type == NULL) return NULL;
    page_size = sysconf(_SC_PAGESIZE);
    if (PyType_Ready(&CounterType) < 0 || PyType_Ready(&MapSinkType) < 0 || PyType_Ready(&CursorType) < 0
        || PyType_Ready(&WriterStateType) < 0 || PyType_Ready(&LockType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Counter", (PyObject *)&CounterType) < 0
        || PyModule_AddObjectRef(m, "MapSink", (PyObject *)&MapSinkType) < 0
        || PyModule_AddObjectRef(m, "Cursor", (PyObject *)&CursorType) < 0
        || PyModule_AddObjectRef(m, "WriterState", (PyObject *)&WriterStateType) < 0
        || PyModule_AddObjectRef(m, "Lock", (PyObject *)&LockType) < 0) { Py_DECREF(m); return NULL; }
    PyModule_AddIntConstant(m, "ABI_VERSION", 7);   /* rr/nativelib.py ABI: bump both together */
    PyModule_AddIntConstant(m, "MODE_RUN", MODE_RUN);
    PyModule_AddIntConstant(m, "MODE_RECORD", MODE_RECORD);
    PyModule_AddIntConstant(m, "MODE_REPLAY", MODE_REPLAY);
    return m;
}
