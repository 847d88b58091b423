;; hostcall_loop.wat: a WASI 0.2 command that makes one host call N times in a
;; tight loop and prints nothing, to measure the cost of a host call:
;;   hostcall_loop <call> <N>
;; <call> (its first letter selects it):
;;   random       wasi:random/random.get-random-u64          () -> u64
;;   now          wasi:clocks/wall-clock.now                 () -> datetime record
;;   check-write  [method]output-stream.check-write (stdout) borrow -> result<u64, stream-error>
;;   poll-ready   [method]pollable.ready (a 0 ns monotonic timer) borrow -> bool
;; N is decimal; N = 0 measures everything but the calls (the baseline to subtract).
;; A missing or unknown argument returns err (exit status 1).
;;
;; Canonical ABI of the calls:
;;   get-arguments() -> list<string>  core: (ret i32); at ret: +0 ptr, +4 count;
;;     element i at ptr + 8i: +0 string ptr, +4 string len (placed by cabi_realloc).
;;   get-random-u64() core: () -> i64.
;;   wall-clock.now() core: (ret i32); at ret: +0 u64 seconds, +8 u32 nanoseconds.
;;   check-write(self) core: (self i32, ret i32); at ret (16 bytes): +0 u8 0=ok
;;     1=err, +8 u64 ok or stream-error. Ignored: stdout stays writable.
;;   subscribe-duration(u64) core: (i64) -> i32;  pollable.ready(self) core: (i32) -> i32.
(component
  (import "wasi:cli/environment@0.2.0" (instance $wasi-cli-environment
    (export "get-arguments" (func (result (list string))))))
  (import "wasi:random/random@0.2.0" (instance $wasi-random-random
    (export "get-random-u64" (func (result u64)))))
  (import "wasi:io/poll@0.2.0" (instance $wasi-io-poll
    (export "pollable" (type $pollable (sub resource)))
    (export "[method]pollable.ready" (func (param "self" (borrow $pollable)) (result bool)))))
  (alias export $wasi-io-poll "pollable" (type $pollable))
  (import "wasi:clocks/monotonic-clock@0.2.0" (instance $wasi-clocks-monotonic-clock
    (alias outer 1 $pollable (type $pollable'))
    (export "pollable" (type $p (eq $pollable')))
    (export "subscribe-duration" (func (param "when" u64) (result (own $p))))))
  (import "wasi:clocks/wall-clock@0.2.0" (instance $wasi-clocks-wall-clock
    (type $datetime' (record (field "seconds" u64) (field "nanoseconds" u32)))
    (export "datetime" (type $datetime (eq $datetime')))
    (export "now" (func (result $datetime)))))
  (import "wasi:io/error@0.2.0" (instance $wasi-io-error
    (export "error" (type (sub resource)))))
  (alias export $wasi-io-error "error" (type $error))
  (import "wasi:io/streams@0.2.0" (instance $wasi-io-streams
    (alias outer 1 $error (type $error'))
    (export "error" (type $e (eq $error')))
    (export "output-stream" (type $output-stream (sub resource)))
    (type $stream-error' (variant (case "last-operation-failed" (own $e)) (case "closed")))
    (export "stream-error" (type $stream-error (eq $stream-error')))
    (export "[method]output-stream.check-write"
      (func (param "self" (borrow $output-stream)) (result (result u64 (error $stream-error)))))))
  (alias export $wasi-io-streams "output-stream" (type $output-stream))
  (import "wasi:cli/stdout@0.2.0" (instance $wasi-cli-stdout
    (alias outer 1 $output-stream (type $output-stream'))
    (export "output-stream" (type $os (eq $output-stream')))
    (export "get-stdout" (func (result (own $os))))))

  ;; libc: memory and a bump cabi_realloc from 8192 (only get-arguments allocates).
  (core module $Libc
    (memory (export "memory") 1)
    (global $heap (mut i32) (i32.const 8192))
    (func (export "cabi_realloc") (param i32 i32) (param $align i32) (param $size i32) (result i32)
      (local $p i32)
      (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get $align))))
      (global.set $heap (i32.add (local.get $p) (local.get $size)))
      (if (i32.gt_u (global.get $heap) (i32.const 65536)) (then unreachable))
      (local.get $p)))
  (core instance $libc (instantiate $Libc))
  (alias core export $libc "memory" (core memory $memory))
  (alias core export $libc "cabi_realloc" (core func $realloc))

  (core func $get-arguments
    (canon lower (func $wasi-cli-environment "get-arguments") (memory $memory) (realloc $realloc)))
  (core func $random-u64 (canon lower (func $wasi-random-random "get-random-u64")))
  (core func $wall-now (canon lower (func $wasi-clocks-wall-clock "now") (memory $memory)))
  (core func $check-write
    (canon lower (func $wasi-io-streams "[method]output-stream.check-write") (memory $memory)))
  (core func $subscribe-duration (canon lower (func $wasi-clocks-monotonic-clock "subscribe-duration")))
  (core func $ready (canon lower (func $wasi-io-poll "[method]pollable.ready")))
  (core func $get-stdout (canon lower (func $wasi-cli-stdout "get-stdout")))

  (core module $Main
    (import "libc" "memory" (memory 1))
    (import "wasi" "get-arguments" (func $get-arguments (param i32)))
    (import "wasi" "random-u64" (func $random-u64 (result i64)))
    (import "wasi" "wall-now" (func $wall-now (param i32)))
    (import "wasi" "check-write" (func $check-write (param i32 i32)))
    (import "wasi" "subscribe-duration" (func $subscribe-duration (param i64) (result i32)))
    (import "wasi" "ready" (func $ready (param i32) (result i32)))
    (import "wasi" "get-stdout" (func $get-stdout (result i32)))

    ;; parse(ptr, len) -> the decimal number in the string (non-digits end it).
    (func $parse (param $p i32) (param $n i32) (result i64)
      (local $v i64) (local $d i32)
      (block $end
        (loop $digit
          (br_if $end (i32.eqz (local.get $n)))
          (local.set $d (i32.sub (i32.load8_u (local.get $p)) (i32.const 48)))
          (br_if $end (i32.gt_u (local.get $d) (i32.const 9)))
          (local.set $v (i64.add (i64.mul (local.get $v) (i64.const 10)) (i64.extend_i32_u (local.get $d))))
          (local.set $p (i32.add (local.get $p) (i32.const 1)))
          (local.set $n (i32.sub (local.get $n) (i32.const 1)))
          (br $digit)))
      (local.get $v))

    (func (export "run") (result i32)
      (local $args i32) (local $which i32) (local $n i64) (local $handle i32) (local $sink i64)
      (call $get-arguments (i32.const 0))
      (if (i32.lt_u (i32.load (i32.const 4)) (i32.const 3)) (then (return (i32.const 1))))
      (local.set $args (i32.load (i32.const 0)))
      ;; argv[1]'s first byte selects the call; argv[2] is N.
      (local.set $which (i32.load8_u (i32.load (i32.add (local.get $args) (i32.const 8)))))
      (local.set $n (call $parse (i32.load (i32.add (local.get $args) (i32.const 16)))
                                 (i32.load (i32.add (local.get $args) (i32.const 20)))))
      (if (i32.eq (local.get $which) (i32.const 99))  ;; 'c'
        (then (local.set $handle (call $get-stdout))))
      (if (i32.eq (local.get $which) (i32.const 112))  ;; 'p'
        (then (local.set $handle (call $subscribe-duration (i64.const 0)))))
      (block $done
        (loop $again
          (br_if $done (i64.eqz (local.get $n)))
          (local.set $n (i64.sub (local.get $n) (i64.const 1)))
          (if (i32.eq (local.get $which) (i32.const 114))  ;; 'r'
            (then (local.set $sink (i64.xor (local.get $sink) (call $random-u64))) (br $again)))
          (if (i32.eq (local.get $which) (i32.const 110))  ;; 'n'
            (then (call $wall-now (i32.const 32)) (br $again)))
          (if (i32.eq (local.get $which) (i32.const 99))  ;; 'c'
            (then (call $check-write (local.get $handle) (i32.const 32)) (br $again)))
          (if (i32.eq (local.get $which) (i32.const 112))  ;; 'p'
            (then (drop (call $ready (local.get $handle))) (br $again)))
          (return (i32.const 1))))
      (i64.store (i32.const 48) (local.get $sink))  ;; keep the random values live
      (i32.const 0)))  ;; result::ok; handles are reclaimed with the instance

  (core instance $main (instantiate $Main
    (with "libc" (instance $libc))
    (with "wasi" (instance
      (export "get-arguments" (func $get-arguments))
      (export "random-u64" (func $random-u64))
      (export "wall-now" (func $wall-now))
      (export "check-write" (func $check-write))
      (export "subscribe-duration" (func $subscribe-duration))
      (export "ready" (func $ready))
      (export "get-stdout" (func $get-stdout))))))

  (func $run (result (result)) (canon lift (core func $main "run")))
  (instance $run-instance (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run-instance)))
