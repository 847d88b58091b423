;; clock.wat: a WASI 0.2 command that prints the clocks, sleeps 5 ms, and
;; prints the monotonic clock again:
;;   wall <seconds> <nanoseconds>      wall-clock.now
;;   wall_res <seconds> <nanoseconds>  wall-clock.resolution
;;   mono <ns>                         monotonic-clock.now
;;   mono_res <ns>                     monotonic-clock.resolution
;;   (subscribe-duration(5 ms), [method]pollable.block, drop the pollable)
;;   mono2 <ns>                        monotonic-clock.now
;;   slept_ok 1|0                      1 if mono2 - mono >= 5 ms
;;
;; Canonical ABI of the calls (memory map and helpers: README.md):
;;   wall-clock.now/resolution() -> datetime  core: (ret i32); at ret (16 bytes):
;;     +0 u64 seconds, +8 u32 nanoseconds.
;;   monotonic-clock.now/resolution() -> u64  core: () -> i64.
;;   subscribe-duration(u64) -> own<pollable> core: (i64) -> i32.
;;   [method]pollable.block(borrow<pollable>) core: (i32).
;;   blocking-write-and-flush(self, contents) -> result<_, stream-error>
;;     core: (self i32, ptr i32, len i32, ret i32); result at ret (12 bytes):
;;     +0 u8 0=ok 1=err; +4 u8 stream-error case; +8 i32 error handle.
;;     The result is ignored: stdout has nowhere to report its own failure.
(component
  (import "wasi:io/poll@0.2.0" (instance $wasi-io-poll
    (export "pollable" (type $pollable (sub resource)))
    (export "[method]pollable.block" (func (param "self" (borrow $pollable))))))
  (alias export $wasi-io-poll "pollable" (type $pollable))
  (import "wasi:clocks/monotonic-clock@0.2.0" (instance $wasi-clocks-monotonic-clock
    (alias outer 1 $pollable (type $pollable'))
    (export "pollable" (type $p (eq $pollable')))
    (export "now" (func (result u64)))
    (export "resolution" (func (result u64)))
    (export "subscribe-duration" (func (param "when" u64) (result (own $p))))))
  (import "wasi:clocks/wall-clock@0.2.0" (instance $wasi-clocks-wall-clock
    (type $datetime' (record (field "seconds" u64) (field "nanoseconds" u32)))
    (export "datetime" (type $datetime (eq $datetime')))
    (export "now" (func (result $datetime)))
    (export "resolution" (func (result $datetime)))))
  (import "wasi:io/error@0.2.0" (instance $wasi-io-error
    (export "error" (type (sub resource)))))
  (alias export $wasi-io-error "error" (type $error))
  (import "wasi:io/streams@0.2.0" (instance $wasi-io-streams
    (alias outer 1 $error (type $error'))
    (export "error" (type $e (eq $error')))
    (export "output-stream" (type $output-stream (sub resource)))
    (type $stream-error' (variant (case "last-operation-failed" (own $e)) (case "closed")))
    (export "stream-error" (type $stream-error (eq $stream-error')))
    (export "[method]output-stream.blocking-write-and-flush"
      (func (param "self" (borrow $output-stream)) (param "contents" (list u8))
            (result (result (error $stream-error)))))))
  (alias export $wasi-io-streams "output-stream" (type $output-stream))
  (import "wasi:cli/stdout@0.2.0" (instance $wasi-cli-stdout
    (alias outer 1 $output-stream (type $output-stream'))
    (export "output-stream" (type $os (eq $output-stream')))
    (export "get-stdout" (func (result (own $os))))))

  ;; libc: the component's memory (no import returns a list, so no allocator).
  (core module $Libc
    (memory (export "memory") 1))
  (core instance $libc (instantiate $Libc))
  (alias core export $libc "memory" (core memory $memory))

  (core func $wall-now (canon lower (func $wasi-clocks-wall-clock "now") (memory $memory)))
  (core func $wall-resolution (canon lower (func $wasi-clocks-wall-clock "resolution") (memory $memory)))
  (core func $mono-now (canon lower (func $wasi-clocks-monotonic-clock "now")))
  (core func $mono-resolution (canon lower (func $wasi-clocks-monotonic-clock "resolution")))
  (core func $subscribe-duration (canon lower (func $wasi-clocks-monotonic-clock "subscribe-duration")))
  (core func $block (canon lower (func $wasi-io-poll "[method]pollable.block")))
  (core func $drop-pollable (canon resource.drop $pollable))
  (core func $get-stdout (canon lower (func $wasi-cli-stdout "get-stdout")))
  (core func $blocking-write-and-flush
    (canon lower (func $wasi-io-streams "[method]output-stream.blocking-write-and-flush")
      (memory $memory)))
  (core func $drop-output-stream (canon resource.drop $output-stream))

  (core module $Main
    (import "libc" "memory" (memory 1))
    (import "wasi" "wall-now" (func $wall-now (param i32)))
    (import "wasi" "wall-resolution" (func $wall-resolution (param i32)))
    (import "wasi" "mono-now" (func $mono-now (result i64)))
    (import "wasi" "mono-resolution" (func $mono-resolution (result i64)))
    (import "wasi" "subscribe-duration" (func $subscribe-duration (param i64) (result i32)))
    (import "wasi" "block" (func $block (param i32)))
    (import "wasi" "drop-pollable" (func $drop-pollable (param i32)))
    (import "wasi" "get-stdout" (func $get-stdout (result i32)))
    (import "wasi" "blocking-write-and-flush" (func $blocking-write-and-flush (param i32 i32 i32 i32)))
    (import "wasi" "drop-output-stream" (func $drop-output-stream (param i32)))

    (data (i32.const 96) " \n")
    (data (i32.const 128) "wall ")      ;; 5
    (data (i32.const 144) "wall_res ")  ;; 9
    (data (i32.const 160) "mono ")      ;; 5
    (data (i32.const 176) "mono_res ")  ;; 9
    (data (i32.const 192) "mono2 ")     ;; 6
    (data (i32.const 208) "slept_ok ")  ;; 9

    ;; ---- output helpers (copied between the guests that format lines) ----
    (global $stdout (mut i32) (i32.const 0))
    (global $line-len (mut i32) (i32.const 0))

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

    ;; flush: write the buffered output (LINE, at 1024) to stdout.
    (func $flush
      (call $write (global.get $stdout) (i32.const 1024) (global.get $line-len))
      (global.set $line-len (i32.const 0)))

    ;; emit(p, n): append n bytes at p to the buffered output.
    (func $emit (param $p i32) (param $n i32)
      (if (i32.gt_u (i32.add (global.get $line-len) (local.get $n)) (i32.const 4096))
        (then (call $flush)))
      (if (i32.gt_u (local.get $n) (i32.const 4096))
        (then (call $write (global.get $stdout) (local.get $p) (local.get $n)) (return)))
      (memory.copy (i32.add (i32.const 1024) (global.get $line-len)) (local.get $p) (local.get $n))
      (global.set $line-len (i32.add (global.get $line-len) (local.get $n))))

    ;; emit-u64(v): v in decimal; the digits are built backwards ending at 64.
    (func $emit-u64 (param $v i64)
      (local $p i32)
      (local.set $p (i32.const 64))
      (loop $digit
        (local.set $p (i32.sub (local.get $p) (i32.const 1)))
        (i64.store8 (local.get $p) (i64.add (i64.const 48) (i64.rem_u (local.get $v) (i64.const 10))))
        (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
        (br_if $digit (i64.ne (local.get $v) (i64.const 0))))
      (call $emit (local.get $p) (i32.sub (i32.const 64) (local.get $p))))

    (func $emit-space (call $emit (i32.const 96) (i32.const 1)))
    (func $emit-newline (call $emit (i32.const 97) (i32.const 1)))

    ;; emit-datetime(label, label-len, seconds, nanoseconds):
    ;; "<label><seconds> <nanoseconds>\n".
    (func $emit-datetime (param $label i32) (param $n i32) (param $seconds i64) (param $nanoseconds i32)
      (call $emit (local.get $label) (local.get $n))
      (call $emit-u64 (local.get $seconds))
      (call $emit-space)
      (call $emit-u64 (i64.extend_i32_u (local.get $nanoseconds)))
      (call $emit-newline))

    ;; emit-labelled(label, label-len, v): "<label><v>\n".
    (func $emit-labelled (param $label i32) (param $n i32) (param $v i64)
      (call $emit (local.get $label) (local.get $n))
      (call $emit-u64 (local.get $v))
      (call $emit-newline))

    (func (export "run") (result i32)
      (local $mono i64)
      (local $mono2 i64)
      (local $pollable i32)
      (global.set $stdout (call $get-stdout))

      (call $wall-now (i32.const 0))
      (call $emit-datetime (i32.const 128) (i32.const 5) (i64.load (i32.const 0)) (i32.load (i32.const 8)))
      (call $wall-resolution (i32.const 0))
      (call $emit-datetime (i32.const 144) (i32.const 9) (i64.load (i32.const 0)) (i32.load (i32.const 8)))

      (local.set $mono (call $mono-now))
      (call $emit-labelled (i32.const 160) (i32.const 5) (local.get $mono))
      (call $emit-labelled (i32.const 176) (i32.const 9) (call $mono-resolution))

      (local.set $pollable (call $subscribe-duration (i64.const 5000000)))
      (call $block (local.get $pollable))
      (call $drop-pollable (local.get $pollable))

      (local.set $mono2 (call $mono-now))
      (call $emit-labelled (i32.const 192) (i32.const 6) (local.get $mono2))
      (call $emit-labelled (i32.const 208) (i32.const 9)
        (i64.extend_i32_u (i64.ge_u (i64.sub (local.get $mono2) (local.get $mono)) (i64.const 5000000))))

      (call $flush)
      (call $drop-output-stream (global.get $stdout))
      (i32.const 0)))  ;; result::ok

  (core instance $main (instantiate $Main
    (with "libc" (instance $libc))
    (with "wasi" (instance
      (export "wall-now" (func $wall-now))
      (export "wall-resolution" (func $wall-resolution))
      (export "mono-now" (func $mono-now))
      (export "mono-resolution" (func $mono-resolution))
      (export "subscribe-duration" (func $subscribe-duration))
      (export "block" (func $block))
      (export "drop-pollable" (func $drop-pollable))
      (export "get-stdout" (func $get-stdout))
      (export "blocking-write-and-flush" (func $blocking-write-and-flush))
      (export "drop-output-stream" (func $drop-output-stream))))))

  (func $run (result (result)) (canon lift (core func $main "run")))
  (instance $run-instance (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run-instance)))
