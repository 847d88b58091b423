;; poll_many.wat: a WASI 0.2 command that waits on three monotonic timers with
;; one wasi:io/poll.poll call per round, so the host receives 2+ borrows in one
;; call. Pollable i is subscribe-duration of 30 ms (0), 10 ms (1), 20 ms (2).
;; Each round polls the list of the not-yet-fired pollables and prints
;; "ready <i>" for each one poll reports, i being the pollable's number above
;; (not its position in that round's list); at most 10 rounds. Then it prints
;; "order <i> <j> <k>" (firing order) and "done". The argument list is in
;; deadline order (1, 2, 0), and the pollables one poll reports are taken in
;; argument order (wasmtime returns them in no particular order), so even a
;; late poll that finds several ready prints "order 1 2 0".
;;
;; Canonical ABI of the calls (memory map and helpers: README.md):
;;   subscribe-duration(u64) -> own<pollable>  core: (i64) -> i32.
;;   poll(in: list<borrow<pollable>>) -> list<u32>
;;     core: (ptr i32, count i32, ret i32); the argument is `count` i32 handles
;;     at ptr; at ret: +0 ptr, +4 count of u32 positions in the argument list,
;;     placed by cabi_realloc.
;;   blocking-write-and-flush(self, contents) -> result<_, stream-error>
;;     core: (self i32, ptr i32, len i32, ret i32); result at ret (12 bytes):
;;     +0 u8 0=ok 1=err; +4 u8 stream-error case; +8 i32 error handle.
;;     The result is ignored: stdout has nowhere to report its own failure.
;; This guest's own memory, all i32 arrays: 256 pollable handles [3]; 272
;; pollable numbers in deadline order [3]; 288 the poll argument [<= 3]; 304
;; pollable number of each argument position [<= 3]; 320 firing order [3].
(component
  (import "wasi:io/poll@0.2.0" (instance $wasi-io-poll
    (export "pollable" (type $pollable (sub resource)))
    (export "poll" (func (param "in" (list (borrow $pollable))) (result (list u32))))))
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
  (core func $subscribe-duration (canon lower (func $wasi-clocks-monotonic-clock "subscribe-duration")))
  (core func $poll (canon lower (func $wasi-io-poll "poll") (memory $memory) (realloc $realloc)))
  (core func $drop-pollable (canon resource.drop $pollable))
  (core func $get-stdout (canon lower (func $wasi-cli-stdout "get-stdout")))
  (core func $blocking-write-and-flush
    (canon lower (func $wasi-io-streams "[method]output-stream.blocking-write-and-flush")
      (memory $memory)))
  (core func $drop-output-stream (canon resource.drop $output-stream))

  (core module $Main
    (import "libc" "memory" (memory 1))
    (import "wasi" "subscribe-duration" (func $subscribe-duration (param i64) (result i32)))
    (import "wasi" "poll" (func $poll (param i32 i32 i32)))
    (import "wasi" "drop-pollable" (func $drop-pollable (param i32)))
    (import "wasi" "get-stdout" (func $get-stdout (result i32)))
    (import "wasi" "blocking-write-and-flush" (func $blocking-write-and-flush (param i32 i32 i32 i32)))
    (import "wasi" "drop-output-stream" (func $drop-output-stream (param i32)))

    (data (i32.const 96) " \n")
    (data (i32.const 128) "ready ")   ;; 6
    (data (i32.const 144) "order")    ;; 5
    (data (i32.const 160) "done\n")   ;; 5
    (data (i32.const 272) "\01\00\00\00\02\00\00\00\00\00\00\00")  ;; [1, 2, 0]

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

    (func (export "run") (result i32)
      (local $fired i32)   ;; bit i set once pollable i has fired
      (local $count i32)   ;; how many have fired
      (local $round i32)
      (local $i i32)
      (local $j i32)
      (local $k i32)       ;; length of this round's poll argument
      (local $reported i32) ;; bit j set if poll reported argument position j
      (local $ready i32)   ;; pointer into poll's result
      (local $end i32)
      (global.set $stdout (call $get-stdout))
      (i32.store (i32.const 256) (call $subscribe-duration (i64.const 30000000)))
      (i32.store (i32.const 260) (call $subscribe-duration (i64.const 10000000)))
      (i32.store (i32.const 264) (call $subscribe-duration (i64.const 20000000)))

      (block $all-fired
        (loop $next-round
          (br_if $all-fired (i32.eq (local.get $count) (i32.const 3)))
          (br_if $all-fired (i32.eq (local.get $round) (i32.const 10)))
          (local.set $round (i32.add (local.get $round) (i32.const 1)))

          ;; The argument: every pollable that has not fired yet, in deadline order.
          (local.set $k (i32.const 0))
          (local.set $j (i32.const 0))
          (loop $pending
            (local.set $i (i32.load (i32.add (i32.const 272) (i32.shl (local.get $j) (i32.const 2)))))
            (if (i32.eqz (i32.and (local.get $fired) (i32.shl (i32.const 1) (local.get $i))))
              (then
                (i32.store (i32.add (i32.const 288) (i32.shl (local.get $k) (i32.const 2)))
                  (i32.load (i32.add (i32.const 256) (i32.shl (local.get $i) (i32.const 2)))))
                (i32.store (i32.add (i32.const 304) (i32.shl (local.get $k) (i32.const 2))) (local.get $i))
                (local.set $k (i32.add (local.get $k) (i32.const 1)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br_if $pending (i32.lt_u (local.get $j) (i32.const 3))))

          (call $poll (i32.const 288) (local.get $k) (i32.const 0))

          ;; Positions poll reported, as bits (a bad host's repeats and
          ;; positions past the argument fall away), then taken in order.
          (local.set $reported (i32.const 0))
          (local.set $ready (i32.load (i32.const 0)))
          (local.set $end (i32.add (local.get $ready) (i32.shl (i32.load (i32.const 4)) (i32.const 2))))
          (block $collected
            (loop $next-ready
              (br_if $collected (i32.ge_u (local.get $ready) (local.get $end)))
              (if (i32.lt_u (i32.load (local.get $ready)) (local.get $k))
                (then (local.set $reported (i32.or (local.get $reported)
                        (i32.shl (i32.const 1) (i32.load (local.get $ready)))))))
              (local.set $ready (i32.add (local.get $ready) (i32.const 4)))
              (br $next-ready)))
          (local.set $j (i32.const 0))
          (block $recorded
            (loop $next-position
              (br_if $recorded (i32.ge_u (local.get $j) (local.get $k)))
              (if (i32.and (local.get $reported) (i32.shl (i32.const 1) (local.get $j)))
                (then
                  (local.set $i (i32.load (i32.add (i32.const 304) (i32.shl (local.get $j) (i32.const 2)))))
                  (local.set $fired (i32.or (local.get $fired) (i32.shl (i32.const 1) (local.get $i))))
                  (i32.store (i32.add (i32.const 320) (i32.shl (local.get $count) (i32.const 2))) (local.get $i))
                  (local.set $count (i32.add (local.get $count) (i32.const 1)))
                  (call $emit (i32.const 128) (i32.const 6))
                  (call $emit-u64 (i64.extend_i32_u (local.get $i)))
                  (call $emit-newline)))
              (local.set $j (i32.add (local.get $j) (i32.const 1)))
              (br $next-position)))
          (br $next-round)))

      (call $emit (i32.const 144) (i32.const 5))
      (local.set $i (i32.const 0))
      (block $listed
        (loop $next-fired
          (br_if $listed (i32.ge_u (local.get $i) (local.get $count)))
          (call $emit-space)
          (call $emit-u64 (i64.load32_u (i32.add (i32.const 320) (i32.shl (local.get $i) (i32.const 2)))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (br $next-fired)))
      (call $emit-newline)
      (call $emit (i32.const 160) (i32.const 5))

      (call $drop-pollable (i32.load (i32.const 256)))
      (call $drop-pollable (i32.load (i32.const 260)))
      (call $drop-pollable (i32.load (i32.const 264)))
      (call $flush)
      (call $drop-output-stream (global.get $stdout))
      (i32.const 0)))  ;; result::ok

  (core instance $main (instantiate $Main
    (with "libc" (instance $libc))
    (with "wasi" (instance
      (export "subscribe-duration" (func $subscribe-duration))
      (export "poll" (func $poll))
      (export "drop-pollable" (func $drop-pollable))
      (export "get-stdout" (func $get-stdout))
      (export "blocking-write-and-flush" (func $blocking-write-and-flush))
      (export "drop-output-stream" (func $drop-output-stream))))))

  (func $run (result (result)) (canon lift (core func $main "run")))
  (instance $run-instance (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run-instance)))
