/*
 * http_concurrent URL...
 * Starts a GET for every URL before waiting on any, then calls wasi:io/poll.poll on the
 * pollables of all still-pending responses (2+ at once whenever 2+ are pending) and reads each
 * response's body as soon as its pollable is ready. At the end prints one line per URL, in
 * argument order: `<i> status <n> body_bytes <n> fnv1a64 <16 hex>` or `<i> error <case>`.
 * Exits 0 even when some requests failed (their lines say so). On stderr, one line per poll
 * call, `poll <pollables passed> ready <argument indexes>`, shows the order of completion.
 */
#include "wasi_http_client.h"

typedef struct {
    wasi_handle future;
    wasi_handle pollable;
    int pending;
    const char *error; /* error-code case name, or NULL */
    int status;
    http_body_summary body;
} http_job;

/* Takes a ready future's outcome, reading the whole body on success. */
static void job_finish(http_job *job) {
    wasi_handle response;
    http_error_code err;
    int failed = 0;
    if (!http_future_take(job->future, &response, &err, &failed)) return; /* still pending */
    wasi_pollable_drop(job->pollable); /* the future's child: dropped first */
    http_future_incoming_response_drop(job->future);
    job->pending = 0;
    if (failed) {
        job->error = http_error_code_name(&err);
        return;
    }
    job->status = http_incoming_response_status(response);
    job->error = http_read_body(response, 0, &job->body);
}

int main(int argc, char **argv) {
    wasi_http_init();
    int count = argc - 1;
    if (count < 1) {
        fprintf(stderr, "usage: http_concurrent http(s)://host[:port][/path]...\n");
        exit(1);
    }
    http_job *jobs = calloc(count, sizeof *jobs);
    wasi_handle *waiting = calloc(count, sizeof *waiting);
    int *waiting_job = calloc(count, sizeof *waiting_job);
    if (!jobs || !waiting || !waiting_job) abort();

    for (int i = 0; i < count; i++) {
        http_url url;
        if (http_url_parse(argv[i + 1], &url) != 0) {
            fprintf(stderr, "not an http(s) URL: %s\n", argv[i + 1]);
            exit(1);
        }
        wasi_handle request = http_request_new(&url, HTTP_METHOD_GET, http_fields_new());
        http_error_code err;
        if (http_send(request, &jobs[i].future, &err) != 0) {
            jobs[i].error = http_error_code_name(&err);
            continue;
        }
        jobs[i].pollable = http_future_incoming_response_subscribe(jobs[i].future);
        jobs[i].pending = 1;
    }

    /* Every round finishes at least one job (poll returns only when one is ready), so this
     * runs at most `count` rounds; the bound guards against a host that breaks that promise. */
    for (int round = 0; round < 4 * count + 4; round++) {
        int n = 0;
        for (int i = 0; i < count; i++) {
            if (jobs[i].pending) {
                waiting[n] = jobs[i].pollable;
                waiting_job[n++] = i;
            }
        }
        if (n == 0) break;
        wasi_list ready;
        wasi_io_poll(waiting, n, &ready);
        const uint32_t *index = ready.ptr;
        fprintf(stderr, "poll %d ready", n);
        for (size_t k = 0; k < ready.len; k++) {
            if (index[k] >= (uint32_t)n) {
                fprintf(stderr, "\npoll returned index %u of %d\n", index[k], n);
                exit(1);
            }
            fprintf(stderr, " %d", waiting_job[index[k]]);
            job_finish(&jobs[waiting_job[index[k]]]);
        }
        fputc('\n', stderr);
        free(ready.ptr);
    }

    for (int i = 0; i < count; i++) {
        if (jobs[i].pending) {
            fprintf(stderr, "request %d never completed\n", i);
            exit(1);
        }
        if (jobs[i].error)
            printf("%d error %s\n", i, jobs[i].error);
        else
            printf("%d status %d body_bytes %" PRIu64 " fnv1a64 %016" PRIx64 "\n", i,
                   jobs[i].status, jobs[i].body.bytes, jobs[i].body.fnv1a64);
    }
    fflush(stdout); /* see wasi_http_init */
    return 0;
}
