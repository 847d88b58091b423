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
typedef struct {
    PyObject_HEAD
    long long calls;
    long long budget;
} Counter;

static PyMemberDef counter_members[] = {
    {"calls", T_LONGLONG, offsetof(Counter, calls), 0, "host calls the guest has made"},
    {"budget", T_LONGLONG, offsetof(Counter, budget), 0, "calls allowed (see HostContext)"},
    {NULL},
};

static int counter_init(Counter *self, PyObject *args, PyObject *kw) {
    self->calls = 0;
    self->budget = PY_LLONG_MAX;
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

typedef struct {
    PyObject_HEAD
    int fd;
    uint8_t *base;     /* the mapping: file offsets [map_start, map_end) */
    off_t map_start, map_end;
    off_t used;        /* end of the records written */
    off_t pwritten;    /* end of the last record written with pwrite */
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

/* 0, or -1 with errno set (nothing written). */
static int mapsink_append(MapSink *m, const uint8_t *data, size_t n) {
    if (m->closed) { errno = EBADF; return -1; }
    if (n == 0) return 0;
    if (mapsink_reserve(m, n) < 0) return -1;
    if (n >= PWRITE_MIN || m->used / page_size < (m->pwritten + page_size - 1) / page_size) {
        /* A large record (socket and stream bytes): copied into the file's pages by the kernel,
         * which costs a fraction of faulting each fresh page of the mapping in (20 MiB: ~4 ms
         * against 25-50 ms); and a small one on a page such a record wrote, which the mapping
         * would fault in again (that fault cost more than the large record's pwrite). The same
         * pages, the same order: the first byte still goes last. */
        if (pwrite_all(m->fd, data + 1, n - 1, m->used + 1) < 0 || pwrite_all(m->fd, data, 1, m->used) < 0)
            return -1;
        m->used += (off_t)n;
        m->pwritten = m->used;
        return 0;
    }
    uint8_t *at = m->base + (m->used - m->map_start);
    memcpy(at + 1, data + 1, n - 1);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);   /* the first byte goes last, also for the compiler */
    __atomic_store_n(at, data[0], __ATOMIC_RELEASE);
    m->used += (off_t)n;
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
    self->base = NULL;
    self->closed = 0;
    return 0;
}

static PyObject *mapsink_write(MapSink *self, PyObject *arg) {
    Py_buffer b;
    if (PyObject_GetBuffer(arg, &b, PyBUF_SIMPLE) < 0) return NULL;
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
} func;

static PyObject *s_codes_get, *s_crc, *s_events_written, *s_events, *s_count, *s_sealed, *s_finished,
    *s_error, *s_state, *s_events_state, *s_call, *s_args, *s_result, *s_failed, *s_consumed, *s_until,
    *s_peek, *s_mono_last, *s_acquire, *s_release, *one;

/* ---- live sources */

static __thread uint64_t xs[4];   /* xoshiro256** for the insecure interfaces (per thread: guests run at once) */
static __thread int xs_seeded;

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

static __thread uint8_t pool[512];   /* per thread: several guests may run at once, without the GIL */
static __thread size_t pool_left;

static int secure_bytes(uint8_t *out, size_t n) {
    if (n > sizeof pool / 2) return fill_random(out, n);
    if (pool_left < n) {
        if (fill_random(pool, sizeof pool) < 0) return -1;
        pool_left = sizeof pool;
    }
    memcpy(out, pool + sizeof pool - pool_left, n);
    memset(pool + sizeof pool - pool_left, 0, n);   /* handed out once */
    pool_left -= n;
    return 0;
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static int insecure_u64(uint64_t *out) {
    if (!xs_seeded) {
        if (fill_random((uint8_t *)xs, sizeof xs) < 0) return -1;
        xs[0] |= 1;
        xs_seeded = 1;
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
        return secure_bytes((uint8_t *)&v->a, 8);
    case OP_INSECURE_U64:
        return insecure_u64(&v->a);
    case OP_SEED:
        return secure_bytes((uint8_t *)&v->a, 8) < 0 ? -1 : secure_bytes((uint8_t *)&v->b, 8);
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

static size_t head(uint8_t *out, uint8_t major, uint64_t n) {
    if (n < 24) { out[0] = major | (uint8_t)n; return 1; }
    if (n < 0x100) { out[0] = major | 24; out[1] = (uint8_t)n; return 2; }
    if (n < 0x10000) { out[0] = major | 25; out[1] = (uint8_t)(n >> 8); out[2] = (uint8_t)n; return 3; }
    if (n < 0x100000000ull) {
        out[0] = major | 26;
        for (int i = 0; i < 4; i++) out[1 + i] = (uint8_t)(n >> (24 - 8 * i));
        return 5;
    }
    out[0] = major | 27;
    for (int i = 0; i < 8; i++) out[1 + i] = (uint8_t)(n >> (56 - 8 * i));
    return 9;
}

static uint32_t crc_table[256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

/* zlib.crc32(data, crc) */
static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t n) {
    crc = ~crc;
    while (n--) crc = crc_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
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

/* ---- record: state = (recorder, shared, writer, encoder, codes, lock, sink) */

/* R_SINK: a MapSink, or the file descriptor (int) a plain Sink writes to */
enum { R_RECORDER, R_SHARED, R_WRITER, R_ENCODER, R_CODES, R_LOCK, R_SINK, R_SIZE };

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

/* 0: recorded (or dropped as the Python Recorder drops it after a stop), 1: use Python,
 * -1: a Python exception is set. */
static int record_event(func *f, uint64_t n, const value *v) {
    PyObject **st = &PyTuple_GET_ITEM(f->state, 0);
    PyObject *lock = st[R_LOCK];
    PyObject *got = PyObject_CallMethodObjArgs(lock, s_acquire, NULL);
    if (got == NULL) return -1;
    Py_DECREF(got);
    int rc = 1;
    uint8_t small[256];
    uint8_t *frame = small;
    PyObject *shared = st[R_SHARED], *writer = st[R_WRITER], *encoder = st[R_ENCODER];
    if (!attr_is(shared, s_sealed, Py_False) || !attr_is(shared, s_finished, Py_False)) {
        rc = 0;   /* SharedWriter.write_event drops it: the stop counted the events before it */
        goto counted;
    }
    if (!attr_is(writer, s_error, Py_None)) goto out;
    PyObject *state = PyObject_GetAttr(writer, s_state);
    if (state == NULL) goto fail;
    int at_events = PyUnicode_Check(state) && PyUnicode_Compare(state, s_events_state) == 0;
    Py_DECREF(state);
    if (!at_events) goto out;
    PyObject *code_obj = PyDict_GetItemWithError(st[R_CODES], f->name);   /* borrowed */
    if (code_obj == NULL) {
        if (PyErr_Occurred()) goto fail;
        goto out;   /* the first event of this call: the definition frame comes from Python */
    }
    uint64_t code;
    if (get_u64(code_obj, &code) < 0) goto out;
    PyObject *crc_obj = PyObject_GetAttr(encoder, s_crc);
    if (crc_obj == NULL) goto fail;
    uint64_t crc64;
    int bad_crc = get_u64(crc_obj, &crc64);
    Py_DECREF(crc_obj);
    if (bad_crc < 0 || crc64 > 0xffffffffu) goto out;

    size_t need = 9 + 48 + (op_shape[f->op] == SHAPE_BYTES ? v->n : 0) + 4;
    if (need > sizeof small) {
        frame = PyMem_Malloc(need);
        if (frame == NULL) { PyErr_NoMemory(); goto fail; }
    }
    uint8_t rec_buf[64];
    uint8_t *rec = op_shape[f->op] == SHAPE_BYTES ? frame + 9 : rec_buf;
    size_t rec_len = encode_event(f->op, code, n, v, rec);
    uint8_t h[9];
    size_t hl = head(h, 0x40, rec_len + 4);
    memmove(frame + hl, rec, rec_len);
    memcpy(frame, h, hl);
    size_t len = hl + rec_len;
    uint32_t crc = crc32_update((uint32_t)crc64, frame, len);
    for (int i = 0; i < 4; i++) frame[len + i] = (uint8_t)(crc >> (24 - 8 * i));
    len += 4;

    PyObject *sink = st[R_SINK];
    int wrote = Py_IS_TYPE(sink, &MapSinkType) ? mapsink_append((MapSink *)sink, frame, len)
                                               : write_all((int)PyLong_AsLong(sink), frame, len);
    if (wrote < 0) {   /* as TraceWriter._write: the writer keeps the error and fails from now on */
        int e = errno;
        PyObject *oserr = PyObject_CallFunction(PyExc_OSError, "is", e, strerror(e));
        if (oserr == NULL || PyObject_SetAttr(writer, s_error, oserr) < 0) { Py_XDECREF(oserr); goto fail; }
        Py_DECREF(oserr);
        PyObject *failure = PyObject_CallMethod(writer, "_failure", NULL);
        if (failure != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(failure), failure);
            Py_DECREF(failure);
        }
        goto fail;
    }

    PyObject *nc = PyLong_FromUnsignedLong(crc);
    if (nc == NULL) goto fail;
    int set = PyObject_SetAttr(encoder, s_crc, nc);
    Py_DECREF(nc);
    if (set < 0 || add_to_attr(writer, s_events_written, 1) < 0 || add_to_attr(shared, s_events, 1) < 0)
        goto fail;
    rc = 0;
counted:
    if (add_to_attr(st[R_RECORDER], s_count, 1) < 0) goto fail;
    goto out;
fail:
    rc = -1;
out:
    if (frame != small) PyMem_Free(frame);
    {
        PyObject *exc = rc == -1 ? PyErr_GetRaisedException() : NULL;
        PyObject *r = PyObject_CallMethodObjArgs(lock, s_release, NULL);
        Py_XDECREF(r);
        if (exc != NULL) PyErr_SetRaisedException(exc);
        else if (r == NULL) rc = -1;
    }
    return rc;
}

/* ---- replay: state = (replayer, ahead, popleft, behind_append, services) */

enum { P_REPLAYER, P_AHEAD, P_POPLEFT, P_BEHIND_APPEND, P_SERVICES, P_SIZE };

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
        PyObject *last = PyDict_GetItemWithError(st[P_SERVICES], s_mono_last);   /* borrowed */
        if (last == NULL && PyErr_Occurred()) { rc = -1; goto out; }
        if (last != NULL && last != Py_None) {
            uint64_t prev;
            if (get_u64(last, &prev) < 0 || v->a < prev) goto out;
        }
        if (PyDict_SetItem(st[P_SERVICES], s_mono_last, result) < 0) { rc = -1; goto out; }
    }
    PyObject *popped = PyObject_CallNoArgs(st[P_POPLEFT]);
    if (popped == NULL) { rc = -1; goto out; }
    PyObject *r = PyObject_CallOneArg(st[P_BEHIND_APPEND], popped);
    Py_DECREF(popped);
    if (r == NULL || add_to_attr(replayer, s_consumed, 1) < 0) { Py_XDECREF(r); rc = -1; goto out; }
    Py_DECREF(r);
    *keep = result;
    result = NULL;
    rc = 0;
out:
    Py_XDECREF(call); Py_XDECREF(args); Py_XDECREF(result); Py_XDECREF(failed);
    Py_DECREF(pair);
    return rc;
}

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
    PyGILState_STATE g = PyGILState_Ensure();
    void *err = NULL;
    int rc;
    if (f->mode == MODE_RECORD) {
        if (n > sizeof small && (buf = PyMem_Malloc(n)) == NULL) goto plain;
        if (live(f->op, n, buf, &v) < 0) goto plain;
        rc = record_event(f, n, &v);
        if (rc > 0) goto plain;
        if (rc < 0) { err = fail_with_exception(f); goto done; }
        lower(f->op, &v, &results[0]);
    } else {
        PyObject *keep = NULL;
        rc = replay_event(f, n, &v, &keep);
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

static int read_head(cursor *c, uint8_t *major, uint64_t *arg) {
    if (c->p >= c->end) return -1;
    uint8_t b = *c->p++;
    *major = b >> 5;
    uint8_t info = b & 31;
    if (info < 24) { *arg = info; return 0; }
    if (info > 27) return -1;
    size_t k = (size_t)1 << (info - 24);
    if ((size_t)(c->end - c->p) < k) return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < k; i++) v = (v << 8) | c->p[i];
    c->p += k;
    *arg = v;
    return 0;
}

static PyObject *decode_item(cursor *c, int depth) {
    uint8_t major;
    uint64_t arg;
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
        if (c->p[-1] == 0xf4) return Py_NewRef(Py_False);
        if (c->p[-1] == 0xf5) return Py_NewRef(Py_True);
        if (c->p[-1] == 0xf6) return Py_NewRef(Py_None);
        return NULL;
    }
    return NULL;   /* maps, tags: the Python decoder's */
}

static PyObject *s_k_call, *s_k_args, *s_k_result, *s_k_failed;

static PyObject *py_event_record(PyObject *self, PyObject *args) {
    Py_buffer b;
    Py_ssize_t start, end;
    PyObject *names;
    if (!PyArg_ParseTuple(args, "y*nnO!", &b, &start, &end, &PyList_Type, &names)) return NULL;
    PyObject *out = NULL, *a = NULL, *r = NULL;
    if (start < 0 || end > b.len || start >= end) goto none;
    cursor c = {(const uint8_t *)b.buf + start, (const uint8_t *)b.buf + end};
    uint8_t first = *c.p++;
    if (first != 0x83 && first != 0x84) goto none;
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
    Py_XDECREF(a); Py_XDECREF(r);
    PyBuffer_Release(&b);
    return out;
none:
    if (PyErr_Occurred()) PyErr_Clear();
    Py_XDECREF(a); Py_XDECREF(r);
    PyBuffer_Release(&b);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------ module functions */

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
    return PyLong_FromVoidPtr(f);
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
    INTERN(s_crc, "_crc"); INTERN(s_events_written, "events_written"); INTERN(s_events, "events");
    INTERN(s_count, "count"); INTERN(s_sealed, "sealed"); INTERN(s_finished, "finished");
    INTERN(s_error, "error"); INTERN(s_state, "_state"); INTERN(s_events_state, "events");
    INTERN(s_call, "call"); INTERN(s_args, "args"); INTERN(s_result, "result"); INTERN(s_failed, "failed");
    INTERN(s_consumed, "consumed"); INTERN(s_until, "until"); INTERN(s_peek, "_peek");
    INTERN(s_mono_last, "clocks.monotonic-last"); INTERN(s_acquire, "acquire"); INTERN(s_release, "release");
    INTERN(s_codes_get, "get");
    INTERN(s_k_call, "call"); INTERN(s_k_args, "args"); INTERN(s_k_result, "result"); INTERN(s_k_failed, "failed");
    if ((one = PyLong_FromLong(1)) == NULL) return NULL;
    page_size = sysconf(_SC_PAGESIZE);
    if (PyType_Ready(&CounterType) < 0 || PyType_Ready(&MapSinkType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Counter", (PyObject *)&CounterType) < 0
        || PyModule_AddObjectRef(m, "MapSink", (PyObject *)&MapSinkType) < 0) { Py_DECREF(m); return NULL; }
    PyModule_AddIntConstant(m, "ABI_VERSION", 1);   /* rr/nativelib.py ABI: bump both together */
    PyModule_AddIntConstant(m, "MODE_RUN", MODE_RUN);
    PyModule_AddIntConstant(m, "MODE_RECORD", MODE_RECORD);
    PyModule_AddIntConstant(m, "MODE_REPLAY", MODE_REPLAY);
    return m;
}
