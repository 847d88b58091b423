;; random.wat: a WASI 0.2 command that prints one value of each random call:
;;   bytes <32 hex digits>           wasi:random/random.get-random-bytes(16)
;;   u64 <n>                         wasi:random/random.get-random-u64
;;   insecure_bytes <16 hex digits>  wasi:random/insecure.get-insecure-random-bytes(8)
;;   insecure_u64 <n>                wasi:random/insecure.get-insecure-random-u64
;;   seed <a> <b>                    wasi:random/insecure-seed.insecure-seed
;;
;; Canonical ABI of the calls (memory map and helpers: README.md):
;;   get-random-bytes / get-insecure-random-bytes(len: u64) -> list<u8>
;;     core: (len i64, ret i32); at ret: +0 i32 ptr, +4 i32 len; the bytes are
;;     placed by cabi_realloc.
;;   get-random-u64 / get-insecure-random-u64() -> u64  core: () -> i64.
;;   insecure-seed() -> tuple<u64, u64>  core: (ret i32); at ret: +0 u64, +8 u64.
;;   blocking-write-and-flush(self, contents) -> result<_, stream-error>
;;     core: (self i32, ptr i32, len i32, ret i32); result at ret (12 bytes):
;;     +0 u8 0=ok 1=err; +4 u8 stream-error case; +8 i32 error handle.
;;     The result is ignored: stdout has nowhere to report its own failure.
(component
  (import "wasi:random/random@0.2.0" (instance $wasi-random-random
    (export "get-random-bytes" (func (param "len" u64) (result (list u8))))
    (export "get-random-u64" (func (result u64)))))
  (import "wasi:random/insecure@0.2.0" (instance $wasi-random-insecure
    (export "get-insecure-random-bytes" (func (param "len" u64) (result (list u8))))
    (export "get-insecure-random-u64" (func (result u64)))))
  (import "wasi:random/insecure-seed@0.2.0" (instance $wasi-random-insecure-seed
    (export "insecure-seed" (func (result (tuple u64 u64))))))
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
  ;; libc: the component's memory, and the cabi_realloc the host calls to place
  ;; the lists and strings it returns: a bump allocator from 8192 that never
  ;; frees (the guest makes a handful of calls, then exits).
  (core module $Libc
    (memory (export "memory") 1)
    (global $heap (mut i32) (i32.const 8192))
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
  (core func $get-random-bytes
    (canon lower (func $wasi-random-random "get-random-bytes") (memory $memory) (realloc $realloc)))
  (core func $get-random-u64 (canon lower (func $wasi-random-random "get-random-u64")))
  (core func $get-insecure-random-bytes
    (canon lower (func $wasi-random-insecure "get-insecure-random-bytes") (memory $memory) (realloc $realloc)))
  (core func $get-insecure-random-u64 (canon lower (func $wasi-random-insecure "get-insecure-random-u64")))
  (core func $insecure-seed
    (canon lower (func $wasi-random-insecure-seed "insecure-seed") (memory $memory)))
  (core func $get-stdout (canon lower (func $wasi-cli-stdout "get-stdout")))
  (core func $blocking-write-and-flush
    (canon lower (func $wasi-io-streams "[method]output-stream.blocking-write-and-flush")
      (memory $memory)))
  (core func $drop-output-stream (canon resource.drop $output-stream))

  (core module $Main
    (import "libc" "memory" (memory 1))
    (import "wasi" "get-random-bytes" (func $get-random-bytes (param i64 i32)))
    (import "wasi" "get-random-u64" (func $get-random-u64 (result i64)))
    (import "wasi" "get-insecure-random-bytes" (func $get-insecure-random-bytes (param i64 i32)))
    (import "wasi" "get-insecure-random-u64" (func $get-insecure-random-u64 (result i64)))
    (import "wasi" "insecure-seed" (func $insecure-seed (param i32)))
    (import "wasi" "get-stdout" (func $get-stdout (result i32)))
    (import "wasi" "blocking-write-and-flush" (func $blocking-write-and-flush (param i32 i32 i32 i32)))
    (import "wasi" "drop-output-stream" (func $drop-output-stream (param i32)))

    (data (i32.const 64) "0123456789abcdef")
    (data (i32.const 96) " \n")
    (data (i32.const 128) "bytes ")           ;; 6
    (data (i32.const 144) "u64 ")             ;; 4
    (data (i32.const 160) "insecure_bytes ")  ;; 15
    (data (i32.const 176) "insecure_u64 ")    ;; 13
    (data (i32.const 192) "seed ")            ;; 5

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

    ;; emit-hex(p, n): the n bytes at p as 2n lowercase hex digits (table at 64,
    ;; one digit pair built at 80).
    (func $emit-hex (param $p i32) (param $n i32)
      (local $end i32)
      (local.set $end (i32.add (local.get $p) (local.get $n)))
      (block $done
        (loop $byte
          (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
          (i32.store8 (i32.const 80)
            (i32.load8_u (i32.add (i32.const 64) (i32.shr_u (i32.load8_u (local.get $p)) (i32.const 4)))))
          (i32.store8 (i32.const 81)
            (i32.load8_u (i32.add (i32.const 64) (i32.and (i32.load8_u (local.get $p)) (i32.const 15)))))
          (call $emit (i32.const 80) (i32.const 2))
          (local.set $p (i32.add (local.get $p) (i32.const 1)))
          (br $byte))))

    ;; emit-labelled-hex(label, label-len): "<label><hex of the list at RET>\n".
    (func $emit-labelled-hex (param $label i32) (param $n i32)
      (call $emit (local.get $label) (local.get $n))
      (call $emit-hex (i32.load (i32.const 0)) (i32.load (i32.const 4)))
      (call $emit-newline))

    ;; emit-labelled(label, label-len, v): "<label><v>\n".
    (func $emit-labelled (param $label i32) (param $n i32) (param $v i64)
      (call $emit (local.get $label) (local.get $n))
      (call $emit-u64 (local.get $v))
      (call $emit-newline))

    (func (export "run") (result i32)
      (global.set $stdout (call $get-stdout))

      (call $get-random-bytes (i64.const 16) (i32.const 0))
      (call $emit-labelled-hex (i32.const 128) (i32.const 6))
      (call $emit-labelled (i32.const 144) (i32.const 4) (call $get-random-u64))
      (call $get-insecure-random-bytes (i64.const 8) (i32.const 0))
      (call $emit-labelled-hex (i32.const 160) (i32.const 15))
      (call $emit-labelled (i32.const 176) (i32.const 13) (call $get-insecure-random-u64))

      (call $insecure-seed (i32.const 0))
      (call $emit (i32.const 192) (i32.const 5))
      (call $emit-u64 (i64.load (i32.const 0)))
      (call $emit-space)
      (call $emit-u64 (i64.load (i32.const 8)))
      (call $emit-newline)

      (call $flush)
      (call $drop-output-stream (global.get $stdout))
      (i32.const 0)))  ;; result::ok

  (core instance $main (instantiate $Main
    (with "libc" (instance $libc))
    (with "wasi" (instance
      (export "get-random-bytes" (func $get-random-bytes))
      (export "get-random-u64" (func $get-random-u64))
      (export "get-insecure-random-bytes" (func $get-insecure-random-bytes))
      (export "get-insecure-random-u64" (func $get-insecure-random-u64))
      (export "insecure-seed" (func $insecure-seed))
      (export "get-stdout" (func $get-stdout))
      (export "blocking-write-and-flush" (func $blocking-write-and-flush))
      (export "drop-output-stream" (func $drop-output-stream))))))

  (func $run (result (result)) (canon lift (core func $main "run")))
  (instance $run-instance (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run-instance)))
