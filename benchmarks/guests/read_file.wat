;; read_file.wat: a WASI 0.2 command that reads one file of its first preopen through a
;; stream, to measure file throughput without the preview1 adapter in the way:
;;   read_file <path>        (path relative to the first preopened directory)
;; opens it with descriptor.open-at (read), takes descriptor.read-via-stream(0), calls
;; input-stream.blocking-read(65536) until the stream reports `closed`, and prints
;;   bytes <n> fnv1a64 <16 hex>
;; (FNV-1a 64 of the content, as tests/guests' bigin prints it). Any failure: err (status 1).
;;
;; Canonical ABI of the calls (every result goes to a return area at 0):
;;   get-arguments() -> list<string>: +0 ptr, +4 count; element i at ptr + 8i (ptr, len).
;;   get-directories() -> list<tuple<own descriptor, string>>: +0 ptr, +4 count;
;;     element i at ptr + 12i: +0 handle, +4 name ptr, +8 name len.
;;   open-at(self, path-flags, path ptr, path len, open-flags, descriptor-flags, ret)
;;     -> result<own descriptor, error-code>: +0 u8 0=ok, +4 handle.
;;   read-via-stream(self, offset u64, ret) -> result<own input-stream, error-code>: same shape.
;;   blocking-read(self, len u64, ret) -> result<list<u8>, stream-error>: +0 u8 0=ok,
;;     ok: +4 ptr, +8 len; err: +4 u8 0=last-operation-failed 1=closed.
;;   blocking-write-and-flush(self, ptr, len, ret) -> result<_, stream-error>: +0 u8.
;; Memory: return area at 0, constant text at 32, the output line at 64, cabi_realloc bumps from 1024 (arguments,
;; preopens); before every read the bump pointer goes back to 65536, so each chunk the host
;; hands over lands in the same 64 KiB and memory stays at 3 pages whatever the file size.
(component
  (import "wasi:cli/environment@0.2.0" (instance $wasi-cli-environment
    (export "get-arguments" (func (result (list string))))))
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
  (import "wasi:cli/stdout@0.2.0" (instance $wasi-cli-stdout
    (alias outer 1 $output-stream (type $output-stream'))
    (export "output-stream" (type $os (eq $output-stream')))
    (export "get-stdout" (func (result (own $os))))))
  (import "wasi:filesystem/types@0.2.0" (instance $wasi-filesystem-types
    (alias outer 1 $input-stream (type $input-stream'))
    (export "input-stream" (type $is (eq $input-stream')))
    (export "descriptor" (type $descriptor (sub resource)))
    (type $path-flags' (flags "symlink-follow"))
    (export "path-flags" (type $path-flags (eq $path-flags')))
    (type $open-flags' (flags "create" "directory" "exclusive" "truncate"))
    (export "open-flags" (type $open-flags (eq $open-flags')))
    (type $descriptor-flags' (flags "read" "write" "file-integrity-sync" "data-integrity-sync"
                                    "requested-write-sync" "mutate-directory"))
    (export "descriptor-flags" (type $descriptor-flags (eq $descriptor-flags')))
    (type $error-code' (enum "access" "would-block" "already" "bad-descriptor" "busy" "deadlock"
      "quota" "exist" "file-too-large" "illegal-byte-sequence" "in-progress" "interrupted"
      "invalid" "io" "is-directory" "loop" "too-many-links" "message-size" "name-too-long"
      "no-device" "no-entry" "no-lock" "insufficient-memory" "insufficient-space"
      "not-directory" "not-empty" "not-recoverable" "unsupported" "no-tty" "no-such-device"
      "overflow" "not-permitted" "pipe" "read-only" "invalid-seek" "text-file-busy"
      "cross-device"))
    (export "error-code" (type $error-code (eq $error-code')))
    (export "[method]descriptor.open-at"
      (func (param "self" (borrow $descriptor)) (param "path-flags" $path-flags)
            (param "path" string) (param "open-flags" $open-flags)
            (param "flags" $descriptor-flags)
            (result (result (own $descriptor) (error $error-code)))))
    (export "[method]descriptor.read-via-stream"
      (func (param "self" (borrow $descriptor)) (param "offset" u64)
            (result (result (own $is) (error $error-code)))))))
  (alias export $wasi-filesystem-types "descriptor" (type $descriptor))
  (import "wasi:filesystem/preopens@0.2.0" (instance $wasi-filesystem-preopens
    (alias outer 1 $descriptor (type $descriptor'))
    (export "descriptor" (type $d (eq $descriptor')))
    (export "get-directories" (func (result (list (tuple (own $d) string)))))))

  ;; libc: memory and a bump cabi_realloc; `rewind` moves the bump pointer back.
  (core module $Libc
    (memory (export "memory") 3)
    (global $heap (mut i32) (i32.const 1024))
    (func (export "rewind") (param $to i32) (global.set $heap (local.get $to)))
    (func (export "cabi_realloc") (param i32 i32) (param $align i32) (param $size i32) (result i32)
      (local $p i32)
      (local.set $p (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
                             (i32.sub (i32.const 0) (local.get $align))))
      (global.set $heap (i32.add (local.get $p) (local.get $size)))
      (if (i32.gt_u (global.get $heap) (i32.const 196608)) (then unreachable))
      (local.get $p)))
  (core instance $libc (instantiate $Libc))
  (alias core export $libc "memory" (core memory $memory))
  (alias core export $libc "cabi_realloc" (core func $realloc))

  (core func $get-arguments
    (canon lower (func $wasi-cli-environment "get-arguments") (memory $memory) (realloc $realloc)))
  (core func $get-directories
    (canon lower (func $wasi-filesystem-preopens "get-directories") (memory $memory) (realloc $realloc)))
  (core func $open-at
    (canon lower (func $wasi-filesystem-types "[method]descriptor.open-at") (memory $memory) (realloc $realloc)))
  (core func $read-via-stream
    (canon lower (func $wasi-filesystem-types "[method]descriptor.read-via-stream") (memory $memory)))
  (core func $blocking-read
    (canon lower (func $wasi-io-streams "[method]input-stream.blocking-read") (memory $memory) (realloc $realloc)))
  (core func $write
    (canon lower (func $wasi-io-streams "[method]output-stream.blocking-write-and-flush") (memory $memory)))
  (core func $get-stdout (canon lower (func $wasi-cli-stdout "get-stdout")))

  (core module $Main
    (import "libc" "memory" (memory 3))
    (import "libc" "rewind" (func $rewind (param i32)))
    (import "wasi" "get-arguments" (func $get-arguments (param i32)))
    (import "wasi" "get-directories" (func $get-directories (param i32)))
    (import "wasi" "open-at" (func $open-at (param i32 i32 i32 i32 i32 i32 i32)))
    (import "wasi" "read-via-stream" (func $read-via-stream (param i32 i64 i32)))
    (import "wasi" "blocking-read" (func $blocking-read (param i32 i64 i32)))
    (import "wasi" "write" (func $write (param i32 i32 i32 i32)))
    (import "wasi" "get-stdout" (func $get-stdout (result i32)))
    (data (i32.const 32) " fnv1a64 ")
    (data (i32.const 64) "bytes ")

    ;; put(at, text...) helpers write the output line; each returns the next free address.
    (func $put-dec (param $at i32) (param $v i64) (result i32)
      (local $end i32) (local $p i32)
      ;; digits are written backwards into [at, at+20), then moved to the front
      (local.set $p (i32.add (local.get $at) (i32.const 20)))
      (local.set $end (local.get $p))
      (loop $digit
        (local.set $p (i32.sub (local.get $p) (i32.const 1)))
        (i64.store8 (local.get $p) (i64.add (i64.rem_u (local.get $v) (i64.const 10)) (i64.const 48)))
        (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
        (br_if $digit (i64.ne (local.get $v) (i64.const 0))))
      (memory.copy (local.get $at) (local.get $p) (i32.sub (local.get $end) (local.get $p)))
      (i32.add (local.get $at) (i32.sub (local.get $end) (local.get $p))))

    (func $put-hex (param $at i32) (param $v i64) (result i32)
      (local $i i32) (local $d i32)
      (loop $nibble
        (local.set $d (i32.wrap_i64 (i64.and (i64.shr_u (local.get $v)
          (i64.extend_i32_u (i32.sub (i32.const 60) (i32.mul (local.get $i) (i32.const 4))))) (i64.const 15))))
        (i32.store8 (i32.add (local.get $at) (local.get $i))
          (i32.add (local.get $d) (select (i32.const 48) (i32.const 87) (i32.lt_u (local.get $d) (i32.const 10)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $nibble (i32.lt_u (local.get $i) (i32.const 16))))
      (i32.add (local.get $at) (i32.const 16)))

    (func (export "run") (result i32)
      (local $path i32) (local $path-len i32) (local $dir i32) (local $file i32) (local $stream i32)
      (local $p i32) (local $end i32) (local $count i64) (local $hash i64) (local $at i32)
      (call $get-arguments (i32.const 0))
      (if (i32.lt_u (i32.load (i32.const 4)) (i32.const 2)) (then (return (i32.const 1))))
      (local.set $path (i32.load (i32.add (i32.load (i32.const 0)) (i32.const 8))))
      (local.set $path-len (i32.load (i32.add (i32.load (i32.const 0)) (i32.const 12))))
      (call $get-directories (i32.const 0))
      (if (i32.eqz (i32.load (i32.const 4))) (then (return (i32.const 1))))
      (local.set $dir (i32.load (i32.load (i32.const 0))))
      ;; open-at(dir, path-flags {}, path, open-flags {}, descriptor-flags {read})
      (call $open-at (local.get $dir) (i32.const 0) (local.get $path) (local.get $path-len)
                     (i32.const 0) (i32.const 1) (i32.const 0))
      (if (i32.load8_u (i32.const 0)) (then (return (i32.const 1))))
      (local.set $file (i32.load (i32.const 4)))
      (call $read-via-stream (local.get $file) (i64.const 0) (i32.const 0))
      (if (i32.load8_u (i32.const 0)) (then (return (i32.const 1))))
      (local.set $stream (i32.load (i32.const 4)))
      (local.set $hash (i64.const 0xcbf29ce484222325))
      (block $eof
        (loop $chunk  ;; bounded by the file: every pass consumes >= 1 byte or ends
          (call $rewind (i32.const 65536))
          (call $blocking-read (local.get $stream) (i64.const 65536) (i32.const 0))
          (if (i32.load8_u (i32.const 0))
            (then
              (br_if $eof (i32.eq (i32.load8_u (i32.const 4)) (i32.const 1)))  ;; closed
              (return (i32.const 1))))  ;; last-operation-failed
          (local.set $p (i32.load (i32.const 4)))
          (local.set $end (i32.add (local.get $p) (i32.load (i32.const 8))))
          (local.set $count (i64.add (local.get $count) (i64.extend_i32_u (i32.load (i32.const 8)))))
          (block $done
            (loop $byte
              (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
              (local.set $hash (i64.mul (i64.xor (local.get $hash) (i64.load8_u (local.get $p)))
                                        (i64.const 0x100000001b3)))
              (local.set $p (i32.add (local.get $p) (i32.const 1)))
              (br $byte)))
          (br $chunk)))
      ;; the line "bytes <n> fnv1a64 <hex>\n" at 64 ("bytes " is already there)
      (local.set $at (call $put-dec (i32.const 70) (local.get $count)))
      (memory.copy (local.get $at) (i32.const 32) (i32.const 9))  ;; " fnv1a64 "
      (local.set $at (call $put-hex (i32.add (local.get $at) (i32.const 9)) (local.get $hash)))
      (i32.store8 (local.get $at) (i32.const 10))
      (call $write (call $get-stdout) (i32.const 64)
                   (i32.sub (i32.add (local.get $at) (i32.const 1)) (i32.const 64)) (i32.const 0))
      (i32.load8_u (i32.const 0))))  ;; result::ok unless the write failed

  (core instance $main (instantiate $Main
    (with "libc" (instance $libc))
    (with "wasi" (instance
      (export "get-arguments" (func $get-arguments))
      (export "get-directories" (func $get-directories))
      (export "open-at" (func $open-at))
      (export "read-via-stream" (func $read-via-stream))
      (export "blocking-read" (func $blocking-read))
      (export "write" (func $write))
      (export "get-stdout" (func $get-stdout))))))

  (func $run (result (result)) (canon lift (core func $main "run")))
  (instance $run-instance (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run-instance)))
