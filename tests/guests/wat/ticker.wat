;; ticker.wat: prints "tick 1", "tick 2", ... forever, one stdout write per line, sleeping
;; 20 ms (subscribe-duration + [method]pollable.block) after each. Only a stop from outside
;; (--timeout, SIGINT, SIGTERM) ends it, and how many lines it printed tells where the stop
;; struck: a replay must print exactly as many.
;; Canonical ABI and memory map: clock.wat and README.md (digits end at 64, line at 1024).
(component
  (import "wasi:io/poll@0.2.0" (instance $wasi-io-poll
    (export "pollable" (type $pollable (sub resource)))
    (export "[method]pollable.block" (func (param "self" (borrow $pollable))))))
  (alias export $wasi-io-poll "pollable" (type $pollable))
  (import "wasi:clocks/monotonic-clock@0.2.0" (instance $wasi-clocks-monotonic-clock
    (alias outer 1 $pollable (type $pollable'))
    (export "pollable" (type $p (eq $pollable')))
    (export "subscribe-duration" (func (param "when" u64) (result (own $p))))))
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

  (core module $Libc (memory (export "memory") 1))
  (core instance $libc (instantiate $Libc))
  (alias core export $libc "memory" (core memory $memory))

  (core func $subscribe-duration (canon lower (func $wasi-clocks-monotonic-clock "subscribe-duration")))
  (core func $block (canon lower (func $wasi-io-poll "[method]pollable.block")))
  (core func $drop-pollable (canon resource.drop $pollable))
  (core func $get-stdout (canon lower (func $wasi-cli-stdout "get-stdout")))
  (core func $blocking-write-and-flush
    (canon lower (func $wasi-io-streams "[method]output-stream.blocking-write-and-flush") (memory $memory)))

  (core module $Main
    (import "libc" "memory" (memory 1))
    (import "wasi" "subscribe-duration" (func $subscribe-duration (param i64) (result i32)))
    (import "wasi" "block" (func $block (param i32)))
    (import "wasi" "drop-pollable" (func $drop-pollable (param i32)))
    (import "wasi" "get-stdout" (func $get-stdout (result i32)))
    (import "wasi" "blocking-write-and-flush" (func $blocking-write-and-flush (param i32 i32 i32 i32)))
    (data (i32.const 1024) "tick ")

    (func (export "run") (result i32)
      (local $stdout i32) (local $n i64) (local $v i64) (local $p i32) (local $len i32) (local $pollable i32)
      (local.set $stdout (call $get-stdout))
      (loop $forever
        (local.set $n (i64.add (local.get $n) (i64.const 1)))
        ;; the digits of n, backwards from 64, then copied after "tick " with a newline
        (local.set $p (i32.const 64)) (local.set $v (local.get $n))
        (loop $digit
          (local.set $p (i32.sub (local.get $p) (i32.const 1)))
          (i64.store8 (local.get $p) (i64.add (i64.const 48) (i64.rem_u (local.get $v) (i64.const 10))))
          (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
          (br_if $digit (i64.ne (local.get $v) (i64.const 0))))
        (local.set $len (i32.sub (i32.const 64) (local.get $p)))
        (memory.copy (i32.const 1029) (local.get $p) (local.get $len))
        (i32.store8 (i32.add (i32.const 1029) (local.get $len)) (i32.const 10))
        (call $blocking-write-and-flush (local.get $stdout) (i32.const 1024)
              (i32.add (i32.const 6) (local.get $len)) (i32.const 0))
        (local.set $pollable (call $subscribe-duration (i64.const 20000000)))
        (call $block (local.get $pollable))
        (call $drop-pollable (local.get $pollable))
        (br $forever))
      (i32.const 0)))

  (core instance $main (instantiate $Main
    (with "libc" (instance $libc))
    (with "wasi" (instance
      (export "subscribe-duration" (func $subscribe-duration))
      (export "block" (func $block))
      (export "drop-pollable" (func $drop-pollable))
      (export "get-stdout" (func $get-stdout))
      (export "blocking-write-and-flush" (func $blocking-write-and-flush))))))

  (func $run (result (result)) (canon lift (core func $main "run")))
  (instance $run-instance (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run-instance)))
