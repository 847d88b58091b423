;; grow.wat: grows its memory one 64 KiB page at a time until memory.grow is refused, then
;; prints "refused at <pages> pages\n" and traps (`unreachable`). Under --max-memory the page
;; count is the limit's; without one it is wasm32's 65536: a replay must apply the recorded
;; limit to print the same line and trap the same way.
(component
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
  (core func $get-stdout (canon lower (func $wasi-cli-stdout "get-stdout")))
  (core func $blocking-write-and-flush
    (canon lower (func $wasi-io-streams "[method]output-stream.blocking-write-and-flush") (memory $memory)))

  (core module $Main
    (import "libc" "memory" (memory 1))
    (import "wasi" "get-stdout" (func $get-stdout (result i32)))
    (import "wasi" "blocking-write-and-flush" (func $blocking-write-and-flush (param i32 i32 i32 i32)))
    (data (i32.const 1024) "refused at ")
    (data (i32.const 96) " pages\n")
    (func (export "run") (result i32)
      (local $v i32) (local $p i32) (local $len i32)
      (loop $grow (br_if $grow (i32.ne (memory.grow (i32.const 1)) (i32.const -1))))
      ;; the decimal digits of memory.size, backwards from 64, copied after "refused at "
      (local.set $p (i32.const 64)) (local.set $v (memory.size))
      (loop $digit
        (local.set $p (i32.sub (local.get $p) (i32.const 1)))
        (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.rem_u (local.get $v) (i32.const 10))))
        (local.set $v (i32.div_u (local.get $v) (i32.const 10)))
        (br_if $digit (i32.ne (local.get $v) (i32.const 0))))
      (local.set $len (i32.sub (i32.const 64) (local.get $p)))
      (memory.copy (i32.const 1035) (local.get $p) (local.get $len))
      (memory.copy (i32.add (i32.const 1035) (local.get $len)) (i32.const 96) (i32.const 7))
      (call $blocking-write-and-flush (call $get-stdout) (i32.const 1024)
            (i32.add (i32.const 18) (local.get $len)) (i32.const 0))
      unreachable))
  (core instance $main (instantiate $Main
    (with "libc" (instance $libc))
    (with "wasi" (instance
      (export "get-stdout" (func $get-stdout))
      (export "blocking-write-and-flush" (func $blocking-write-and-flush))))))

  (func $run (result (result)) (canon lift (core func $main "run")))
  (instance $run-instance (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run-instance)))
