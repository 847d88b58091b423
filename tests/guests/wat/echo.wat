;; echo.wat: a WASI 0.2 command that copies stdin to stdout, then prints
;; "done\n" to stderr.
;;
;; get-stdin, then [method]input-stream.blocking-read(65536) until it returns an
;; error (closed at end of input; last-operation-failed also ends the copy),
;; each chunk written with blocking-write-and-flush in pieces of at most 4096
;; bytes, the most one call accepts. Nothing is written to stdout but the input.
;;
;; Canonical ABI of the calls (memory map: README.md):
;;   blocking-read(self, len: u64) -> result<list<u8>, stream-error>
;;     core: (self i32, len i64, ret i32); result at ret (12 bytes):
;;     +0 u8 0=ok 1=err;
;;     ok:  +4 i32 ptr, +8 i32 len of the bytes, placed by cabi_realloc;
;;     err: +4 u8 0=last-operation-failed 1=closed, +8 i32 own<error> handle
;;          (last-operation-failed only; dropped here).
;;   blocking-write-and-flush(self, contents) -> result<_, stream-error>
;;     core: (self i32, ptr i32, len i32, ret i32); result at ret, same
;;     12-byte layout with no ok payload. Ignored: stdio has nowhere to report
;;     its own failure.
;; The bump allocator is reset to its base after each chunk is written, so
;; memory stays at one 64 KiB chunk however long the input is.
(component
  (import "wasi:io/error@0.2.0" (instance $wasi-io-error
    (export "error" (type (sub resource)))))
  (alias export $wasi-io-error "error" (type $error))
  (import "wasi:io/streams@0.2.0" (instance $wasi-io-streams
    (alias outer 1 $error (type $error'))
    (export "error" (type $e (eq $error')))
    (export "input-stream" (type $input-stream (sub resource)))
    (export "output-stream" (type $output-stream (sub resource)))
    (type $stream-error' (variant (case "last-operation-failed" (own $e)) (case "closed")))
    (export "stream-error" (type $stream-error (eq $stream-error')))
    (export "[method]input-stream.blocking-read"
      (func (param "self" (borrow $input-stream)) (param "len" u64)
            (result (result (list u8) (error $stream-error)))))
    (export "[method]output-stream.blocking-write-and-flush"
      (func (param "self" (borrow $output-stream)) (param "contents" (list u8))
            (result (result (error $stream-error)))))))
  (alias export $wasi-io-streams "input-stream" (type $input-stream))
  (alias export $wasi-io-streams "output-stream" (type $output-stream))
  (import "wasi:cli/stdin@0.2.0" (instance $wasi-cli-stdin
    (alias outer 1 $input-stream (type $input-stream'))
    (export "input-stream" (type $is (eq $input-stream')))
    (export "get-stdin" (func (result (own $is))))))
  (import "wasi:cli/stdout@0.2.0" (instance $wasi-cli-stdout
    (alias outer 1 $output-stream (type $output-stream'))
    (export "output-stream" (type $os (eq $output-stream')))
    (export "get-stdout" (func (result (own $os))))))
  (import "wasi:cli/stderr@0.2.0" (instance $wasi-cli-stderr
    (alias outer 1 $output-stream (type $output-stream'))
    (export "output-stream" (type $os (eq $output-stream')))
    (export "get-stderr" (func (result (own $os))))))

  ;; libc: the component's memory, and the cabi_realloc the host calls to place
  ;; the bytes it reads: a bump allocator from 8192 whose "heap" pointer the
  ;; main module resets after each chunk.
  (core module $Libc
    (memory (export "memory") 1)
    (global $heap (export "heap") (mut i32) (i32.const 8192))
    ;; cabi_realloc(old-ptr, old-size, align, new-size) -> ptr. Lowering results
    ;; only ever allocates afresh (old-ptr = 0), so the first two are unused.
    (func (export "cabi_realloc") (param i32 i32) (param $align i32) (param $size i32) (result i32)
      (local $p i32)
      (local $end i32)
      (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get $align))))
      (local.set $end (i32.add (local.get $p) (local.get $size)))
      (if (i32.gt_u (local.get $end) (i32.shl (memory.size) (i32.const 16)))
        (then
          (if (i32.eq (i32.const -1)
                (memory.grow (i32.sub (i32.shr_u (i32.add (local.get $end) (i32.const 65535)) (i32.const 16))
                                      (memory.size))))
            (then unreachable))))
      (global.set $heap (local.get $end))
      (local.get $p)))
  (core instance $libc (instantiate $Libc))
  (alias core export $libc "memory" (core memory $memory))
  (alias core export $libc "cabi_realloc" (core func $realloc))
  (alias core export $libc "heap" (core global $heap))

  (core func $get-stdin (canon lower (func $wasi-cli-stdin "get-stdin")))
  (core func $get-stdout (canon lower (func $wasi-cli-stdout "get-stdout")))
  (core func $get-stderr (canon lower (func $wasi-cli-stderr "get-stderr")))
  (core func $blocking-read
    (canon lower (func $wasi-io-streams "[method]input-stream.blocking-read")
      (memory $memory) (realloc $realloc)))
  (core func $blocking-write-and-flush
    (canon lower (func $wasi-io-streams "[method]output-stream.blocking-write-and-flush")
      (memory $memory)))
  (core func $drop-input-stream (canon resource.drop $input-stream))
  (core func $drop-output-stream (canon resource.drop $output-stream))
  (core func $drop-error (canon resource.drop $error))

  (core module $Main
    (import "libc" "memory" (memory 1))
    (import "libc" "heap" (global $heap (mut i32)))
    (import "wasi" "get-stdin" (func $get-stdin (result i32)))
    (import "wasi" "get-stdout" (func $get-stdout (result i32)))
    (import "wasi" "get-stderr" (func $get-stderr (result i32)))
    (import "wasi" "blocking-read" (func $blocking-read (param i32 i64 i32)))
    (import "wasi" "blocking-write-and-flush" (func $blocking-write-and-flush (param i32 i32 i32 i32)))
    (import "wasi" "drop-input-stream" (func $drop-input-stream (param i32)))
    (import "wasi" "drop-output-stream" (func $drop-output-stream (param i32)))
    (import "wasi" "drop-error" (func $drop-error (param i32)))

    (data (i32.const 128) "done\n")  ;; 5

    ;; write(stream, p, n): blocking-write-and-flush in chunks of at most 4096
    ;; bytes, the most one call accepts.
    (func $write (param $stream i32) (param $p i32) (param $n i32)
      (local $k i32)
      (block $done
        (loop $chunk
          (br_if $done (i32.eqz (local.get $n)))
          (local.set $k (select (i32.const 4096) (local.get $n) (i32.gt_u (local.get $n) (i32.const 4096))))
          (call $blocking-write-and-flush (local.get $stream) (local.get $p) (local.get $k) (i32.const 0))
          (local.set $p (i32.add (local.get $p) (local.get $k)))
          (local.set $n (i32.sub (local.get $n) (local.get $k)))
          (br $chunk))))

    (func (export "run") (result i32)
      (local $stdin i32)
      (local $stdout i32)
      (local $stderr i32)
      (local.set $stdin (call $get-stdin))
      (local.set $stdout (call $get-stdout))
      (block $end-of-input
        (loop $copy
          (call $blocking-read (local.get $stdin) (i64.const 65536) (i32.const 0))
          (if (i32.load8_u (i32.const 0))  ;; err
            (then
              (if (i32.eqz (i32.load8_u (i32.const 4)))  ;; last-operation-failed(error)
                (then (call $drop-error (i32.load (i32.const 8)))))
              (br $end-of-input)))
          (call $write (local.get $stdout) (i32.load (i32.const 4)) (i32.load (i32.const 8)))
          (global.set $heap (i32.const 8192))
          (br $copy)))
      (call $drop-input-stream (local.get $stdin))
      (call $drop-output-stream (local.get $stdout))
      (local.set $stderr (call $get-stderr))
      (call $write (local.get $stderr) (i32.const 128) (i32.const 5))
      (call $drop-output-stream (local.get $stderr))
      (i32.const 0)))  ;; result::ok

  (core instance $main (instantiate $Main
    (with "libc" (instance $libc))
    (with "wasi" (instance
      (export "get-stdin" (func $get-stdin))
      (export "get-stdout" (func $get-stdout))
      (export "get-stderr" (func $get-stderr))
      (export "blocking-read" (func $blocking-read))
      (export "blocking-write-and-flush" (func $blocking-write-and-flush))
      (export "drop-input-stream" (func $drop-input-stream))
      (export "drop-output-stream" (func $drop-output-stream))
      (export "drop-error" (func $drop-error))))))

  (func $run (result (result)) (canon lift (core func $main "run")))
  (instance $run-instance (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run-instance)))
