;; args_env.wat: a WASI 0.2 command that prints what wasi:cli/environment gives it:
;;   arg <s>       one line per get-arguments element, in order
;;   env <k>=<v>   one line per get-environment pair, in order
;;   cwd <path>    initial-cwd, or "cwd none" when it returns none
;;
;; Canonical ABI of the calls (memory map and helpers: README.md); every string
;; is UTF-8 (ptr i32, len i32) placed by cabi_realloc:
;;   get-arguments() -> list<string>  core: (ret i32); at ret: +0 ptr, +4 count;
;;     element i at ptr + 8i: +0 string ptr, +4 string len.
;;   get-environment() -> list<tuple<string, string>>  core: (ret i32); at ret:
;;     +0 ptr, +4 count; element i at ptr + 16i: +0 key ptr, +4 key len,
;;     +8 value ptr, +12 value len.
;;   initial-cwd() -> option<string>  core: (ret i32); at ret (12 bytes):
;;     +0 u8 0=none 1=some, +4 string ptr, +8 string len.
;;   blocking-write-and-flush(self, contents) -> result<_, stream-error>
;;     core: (self i32, ptr i32, len i32, ret i32); result at ret (12 bytes):
;;     +0 u8 0=ok 1=err; +4 u8 stream-error case; +8 i32 error handle.
;;     The result is ignored: stdout has nowhere to report its own failure.
(component
  (import "wasi:cli/environment@0.2.0" (instance $wasi-cli-environment
    (export "get-environment" (func (result (list (tuple string string)))))
    (export "get-arguments" (func (result (list string))))
    (export "initial-cwd" (func (result (option string))))))
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
  (core func $get-environment
    (canon lower (func $wasi-cli-environment "get-environment") (memory $memory) (realloc $realloc)))
  (core func $get-arguments
    (canon lower (func $wasi-cli-environment "get-arguments") (memory $memory) (realloc $realloc)))
  (core func $initial-cwd
    (canon lower (func $wasi-cli-environment "initial-cwd") (memory $memory) (realloc $realloc)))
  (core func $get-stdout (canon lower (func $wasi-cli-stdout "get-stdout")))
  (core func $blocking-write-and-flush
    (canon lower (func $wasi-io-streams "[method]output-stream.blocking-write-and-flush")
      (memory $memory)))
  (core func $drop-output-stream (canon resource.drop $output-stream))

  (core module $Main
    (import "libc" "memory" (memory 1))
    (import "wasi" "get-environment" (func $get-environment (param i32)))
    (import "wasi" "get-arguments" (func $get-arguments (param i32)))
    (import "wasi" "initial-cwd" (func $initial-cwd (param i32)))
    (import "wasi" "get-stdout" (func $get-stdout (result i32)))
    (import "wasi" "blocking-write-and-flush" (func $blocking-write-and-flush (param i32 i32 i32 i32)))
    (import "wasi" "drop-output-stream" (func $drop-output-stream (param i32)))

    (data (i32.const 97) "\n=")
    (data (i32.const 128) "arg ")  ;; 4
    (data (i32.const 144) "env ")  ;; 4
    (data (i32.const 160) "cwd ")  ;; 4
    (data (i32.const 176) "none")  ;; 4

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

    (func $emit-newline (call $emit (i32.const 97) (i32.const 1)))

    ;; emit-string-at(p): the string whose (ptr, len) pair is stored at p.
    (func $emit-string-at (param $p i32)
      (call $emit (i32.load (local.get $p)) (i32.load offset=4 (local.get $p))))

    (func (export "run") (result i32)
      (local $element i32)
      (local $end i32)
      (global.set $stdout (call $get-stdout))

      (call $get-arguments (i32.const 0))
      (local.set $element (i32.load (i32.const 0)))
      (local.set $end (i32.add (local.get $element) (i32.mul (i32.load (i32.const 4)) (i32.const 8))))
      (block $done
        (loop $argument
          (br_if $done (i32.ge_u (local.get $element) (local.get $end)))
          (call $emit (i32.const 128) (i32.const 4))
          (call $emit-string-at (local.get $element))
          (call $emit-newline)
          (local.set $element (i32.add (local.get $element) (i32.const 8)))
          (br $argument)))

      (call $get-environment (i32.const 0))
      (local.set $element (i32.load (i32.const 0)))
      (local.set $end (i32.add (local.get $element) (i32.mul (i32.load (i32.const 4)) (i32.const 16))))
      (block $done
        (loop $variable
          (br_if $done (i32.ge_u (local.get $element) (local.get $end)))
          (call $emit (i32.const 144) (i32.const 4))
          (call $emit-string-at (local.get $element))
          (call $emit (i32.const 98) (i32.const 1))  ;; "="
          (call $emit-string-at (i32.add (local.get $element) (i32.const 8)))
          (call $emit-newline)
          (local.set $element (i32.add (local.get $element) (i32.const 16)))
          (br $variable)))

      (call $initial-cwd (i32.const 0))
      (call $emit (i32.const 160) (i32.const 4))
      (if (i32.load8_u (i32.const 0))
        (then (call $emit-string-at (i32.const 4)))
        (else (call $emit (i32.const 176) (i32.const 4))))
      (call $emit-newline)

      (call $flush)
      (call $drop-output-stream (global.get $stdout))
      (i32.const 0)))  ;; result::ok

  (core instance $main (instantiate $Main
    (with "libc" (instance $libc))
    (with "wasi" (instance
      (export "get-environment" (func $get-environment))
      (export "get-arguments" (func $get-arguments))
      (export "initial-cwd" (func $initial-cwd))
      (export "get-stdout" (func $get-stdout))
      (export "blocking-write-and-flush" (func $blocking-write-and-flush))
      (export "drop-output-stream" (func $drop-output-stream))))))

  (func $run (result (result)) (canon lift (core func $main "run")))
  (instance $run-instance (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run-instance)))
