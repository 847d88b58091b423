;; random_heavy.wat: a WASI 0.2 command that makes many recorded host calls and little else,
;; to measure what recording and replaying cost per event (benchmarks/bench_record.py).
;;
;; Usage: random_heavy [N [M]]   (defaults: N = 1000, M = N)
;;   calls wasi:random/random.get-random-u64 N times, then get-random-bytes(16) M times, and
;;   prints "u64 <N>\nbytes <M>\nchecksum <c>\n", where c folds every value received
;;   (64-bit FNV-1a style: c = (c xor word) * 0x100000001b3, one u64 word at a time; the 16
;;   bytes as two little-endian words). Replay must print the same checksum.
;;
;; Canonical ABI of the calls (same conventions as tests/guests/wat/README.md):
;;   get-arguments() -> list<string>  core: (ret i32); at ret: +0 ptr, +4 count;
;;     element i at ptr + 8i: +0 string ptr, +4 string len.
;;   get-random-bytes(len: u64) -> list<u8>  core: (len i64, ret i32); at ret: +0 ptr, +4 len.
;;   get-random-u64() -> u64  core: () -> i64.
;;   blocking-write-and-flush(self, contents) -> result<_, stream-error>
;;     core: (self i32, ptr i32, len i32, ret i32); the result is ignored.
;; Lists returned by the host are placed by cabi_realloc, a bump allocator from 8192; the main
;; module resets it (the exported global "heap") after every get-random-bytes, so a million
;; calls use no more memory than one.
(component
  (import "wasi:cli/environment@0.2.0" (instance $wasi-cli-environment
    (export "get-arguments" (func (result (list string))))))
  (import "wasi:random/random@0.2.0" (instance $wasi-random-random
    (export "get-random-bytes" (func (param "len" u64) (result (list u8))))
    (export "get-random-u64" (func (result u64)))))
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
  (core module $Libc
    (memory (export "memory") 1)
    (global $heap (export "heap") (mut i32) (i32.const 8192))
    ;; cabi_realloc(old-ptr, old-size, align, new-size) -> ptr; results are always fresh
    ;; allocations (old-ptr = 0), so the first two parameters are unused.
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
  (core func $get-arguments
    (canon lower (func $wasi-cli-environment "get-arguments") (memory $memory) (realloc $realloc)))
  (core func $get-random-bytes
    (canon lower (func $wasi-random-random "get-random-bytes") (memory $memory) (realloc $realloc)))
  (core func $get-random-u64 (canon lower (func $wasi-random-random "get-random-u64")))
  (core func $get-stdout (canon lower (func $wasi-cli-stdout "get-stdout")))
  (core func $blocking-write-and-flush
    (canon lower (func $wasi-io-streams "[method]output-stream.blocking-write-and-flush")
      (memory $memory)))
  (core func $drop-output-stream (canon resource.drop $output-stream))

  (core module $Main
    (import "libc" "memory" (memory 1))
    (import "libc" "heap" (global $heap (mut i32)))
    (import "wasi" "get-arguments" (func $get-arguments (param i32)))
    (import "wasi" "get-random-bytes" (func $get-random-bytes (param i64 i32)))
    (import "wasi" "get-random-u64" (func $get-random-u64 (result i64)))
    (import "wasi" "get-stdout" (func $get-stdout (result i32)))
    (import "wasi" "blocking-write-and-flush" (func $blocking-write-and-flush (param i32 i32 i32 i32)))
    (import "wasi" "drop-output-stream" (func $drop-output-stream (param i32)))

    (data (i32.const 128) "u64 ")       ;; 4
    (data (i32.const 144) "bytes ")     ;; 6
    (data (i32.const 160) "checksum ")  ;; 9
    (data (i32.const 176) "\n")

    (global $len (mut i32) (i32.const 0))   ;; bytes of output buffered at 1024 (< 100)
    (global $sum (mut i64) (i64.const 0xcbf29ce484222325))

    (func $mix (param $word i64)
      (global.set $sum (i64.mul (i64.xor (global.get $sum) (local.get $word))
                                (i64.const 0x100000001b3))))

    (func $emit (param $p i32) (param $n i32)
      (memory.copy (i32.add (i32.const 1024) (global.get $len)) (local.get $p) (local.get $n))
      (global.set $len (i32.add (global.get $len) (local.get $n))))

    ;; emit-line(label, label-len, v): "<label><v in decimal>\n"; digits built backwards ending at 64.
    (func $emit-line (param $label i32) (param $n i32) (param $v i64)
      (local $p i32)
      (call $emit (local.get $label) (local.get $n))
      (local.set $p (i32.const 64))
      (loop $digit
        (local.set $p (i32.sub (local.get $p) (i32.const 1)))
        (i64.store8 (local.get $p) (i64.add (i64.const 48) (i64.rem_u (local.get $v) (i64.const 10))))
        (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
        (br_if $digit (i64.ne (local.get $v) (i64.const 0))))
      (call $emit (local.get $p) (i32.sub (i32.const 64) (local.get $p)))
      (call $emit (i32.const 176) (i32.const 1)))

    ;; argument(i, default): argv[i] parsed as decimal, or `default` when there is no argv[i].
    ;; get-arguments was called with its result at 0..7.
    (func $argument (param $i i32) (param $default i64) (result i64)
      (local $s i32)
      (local $end i32)
      (local $v i64)
      (if (i32.ge_u (local.get $i) (i32.load (i32.const 4)))
        (then (return (local.get $default))))
      (local.set $s (i32.add (i32.load (i32.const 0)) (i32.mul (local.get $i) (i32.const 8))))
      (local.set $end (i32.add (i32.load (local.get $s)) (i32.load offset=4 (local.get $s))))
      (local.set $s (i32.load (local.get $s)))
      (block $done
        (loop $digit
          (br_if $done (i32.ge_u (local.get $s) (local.get $end)))
          (local.set $v (i64.add (i64.mul (local.get $v) (i64.const 10))
                                 (i64.extend_i32_u (i32.sub (i32.load8_u (local.get $s)) (i32.const 48)))))
          (local.set $s (i32.add (local.get $s) (i32.const 1)))
          (br $digit)))
      (local.get $v))

    (func (export "run") (result i32)
      (local $n i64)
      (local $m i64)
      (local $i i64)
      (local $stdout i32)
      (call $get-arguments (i32.const 0))
      (local.set $n (call $argument (i32.const 1) (i64.const 1000)))
      (local.set $m (call $argument (i32.const 2) (local.get $n)))

      (local.set $i (i64.const 0))
      (block $done
        (loop $u64
          (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
          (call $mix (call $get-random-u64))
          (local.set $i (i64.add (local.get $i) (i64.const 1)))
          (br $u64)))

      (local.set $i (i64.const 0))
      (block $done
        (loop $bytes
          (br_if $done (i64.ge_u (local.get $i) (local.get $m)))
          (global.set $heap (i32.const 8192))   ;; the previous list is no longer needed
          (call $get-random-bytes (i64.const 16) (i32.const 0))
          (call $mix (i64.load (i32.load (i32.const 0))))
          (call $mix (i64.load offset=8 (i32.load (i32.const 0))))
          (local.set $i (i64.add (local.get $i) (i64.const 1)))
          (br $bytes)))

      (call $emit-line (i32.const 128) (i32.const 4) (local.get $n))
      (call $emit-line (i32.const 144) (i32.const 6) (local.get $m))
      (call $emit-line (i32.const 160) (i32.const 9) (global.get $sum))
      (local.set $stdout (call $get-stdout))
      (call $blocking-write-and-flush (local.get $stdout) (i32.const 1024) (global.get $len) (i32.const 0))
      (call $drop-output-stream (local.get $stdout))
      (i32.const 0)))  ;; result::ok

  (core instance $main (instantiate $Main
    (with "libc" (instance $libc))
    (with "wasi" (instance
      (export "get-arguments" (func $get-arguments))
      (export "get-random-bytes" (func $get-random-bytes))
      (export "get-random-u64" (func $get-random-u64))
      (export "get-stdout" (func $get-stdout))
      (export "blocking-write-and-flush" (func $blocking-write-and-flush))
      (export "drop-output-stream" (func $drop-output-stream))))))

  (func $run (result (result)) (canon lift (core func $main "run")))
  (instance $run-instance (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run-instance)))
