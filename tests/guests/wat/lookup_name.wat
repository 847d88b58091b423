;; lookup_name.wat: a WASI 0.2 command that resolves a name with wasi:sockets/ip-name-lookup.
;;
;;   lookup_name NAME
;;
;; instance-network -> resolve-addresses(NAME) -> subscribe -> resolve-next-address until it
;; gives none (would-block: pollable.block, then again). Prints one line per address,
;; "ipv4 127.0.0.1" or "ipv6 0:0:0:0:0:0:0:1" (eight hex groups, no shortening), then
;; "done\n"; "resolve err NN\n" / "next err NN\n" (NN the error-code case) on failure.
;; With no NAME: "usage: lookup_name NAME\n".
;;
;; Canonical ABI (ret = 0):
;;   resolve-addresses(network, string) -> result<own<resolve-address-stream>, error-code>
;;     core (network, ptr, len, ret): +0 tag, +4 handle | +4 u8 code.
;;   resolve-next-address(self) -> result<option<ip-address>, error-code>  core (self, ret):
;;     +0 tag; ok: +2 u8 option tag, +4 u8 address case, +6 four u8 | eight u16; err: +2 u8 code.
;;   subscribe(self) -> own<pollable>  core (self) -> i32.
(component
  (import "wasi:cli/environment@0.2.0" (instance $wasi-cli-environment
    (export "get-arguments" (func (result (list string))))))
  (import "wasi:io/error@0.2.0" (instance $wasi-io-error
    (export "error" (type (sub resource)))))
  (alias export $wasi-io-error "error" (type $error))
  (import "wasi:io/poll@0.2.0" (instance $wasi-io-poll
    (export "pollable" (type $pollable (sub resource)))
    (export "[method]pollable.block" (func (param "self" (borrow $pollable))))
))
  (alias export $wasi-io-poll "pollable" (type $pollable))
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
  (import "wasi:sockets/network@0.2.0" (instance $wasi-sockets-network
    (export "network" (type (sub resource)))
    (type $error-code' (enum "unknown" "access-denied" "not-supported" "invalid-argument"
      "out-of-memory" "timeout" "concurrency-conflict" "not-in-progress" "would-block"
      "invalid-state" "new-socket-limit" "address-not-bindable" "address-in-use"
      "remote-unreachable" "connection-refused" "connection-reset" "connection-aborted"
      "datagram-too-large" "name-unresolvable" "temporary-resolver-failure"
      "permanent-resolver-failure"))
    (export "error-code" (type (eq $error-code')))
    (type $family' (enum "ipv4" "ipv6"))
    (export "ip-address-family" (type (eq $family')))
    (type $v4' (tuple u8 u8 u8 u8))
    (export "ipv4-address" (type $v4 (eq $v4')))
    (type $v6' (tuple u16 u16 u16 u16 u16 u16 u16 u16))
    (export "ipv6-address" (type $v6 (eq $v6')))
    (type $v4sa' (record (field "port" u16) (field "address" $v4)))
    (export "ipv4-socket-address" (type $v4sa (eq $v4sa')))
    (type $v6sa' (record (field "port" u16) (field "flow-info" u32) (field "address" $v6) (field "scope-id" u32)))
    (export "ipv6-socket-address" (type $v6sa (eq $v6sa')))
    (type $isa' (variant (case "ipv4" $v4sa) (case "ipv6" $v6sa)))
    (export "ip-socket-address" (type (eq $isa')))
    (type $ia' (variant (case "ipv4" $v4) (case "ipv6" $v6)))
    (export "ip-address" (type (eq $ia')))))
  (alias export $wasi-sockets-network "network" (type $network))
  (alias export $wasi-sockets-network "error-code" (type $error-code))
  (alias export $wasi-sockets-network "ip-address-family" (type $family))
  (alias export $wasi-sockets-network "ip-socket-address" (type $ip-socket-address))
  (alias export $wasi-sockets-network "ip-address" (type $ip-address))
  (import "wasi:sockets/instance-network@0.2.0" (instance $wasi-sockets-instance-network
    (alias outer 1 $network (type $network'))
    (export "network" (type $n (eq $network')))
    (export "instance-network" (func (result (own $n))))))
  (import "wasi:sockets/ip-name-lookup@0.2.0" (instance $wasi-sockets-ip-name-lookup
    (alias outer 1 $network (type $network'))
    (export "network" (type $n (eq $network')))
    (alias outer 1 $error-code (type $error-code'))
    (export "error-code" (type $ec (eq $error-code')))
    (alias outer 1 $ip-address (type $ia'))
    (export "ip-address" (type $ia (eq $ia')))
    (alias outer 1 $pollable (type $pollable'))
    (export "pollable" (type $p (eq $pollable')))
    (export "resolve-address-stream" (type $ras (sub resource)))
    (export "resolve-addresses"
      (func (param "network" (borrow $n)) (param "name" string) (result (result (own $ras) (error $ec)))))
    (export "[method]resolve-address-stream.resolve-next-address"
      (func (param "self" (borrow $ras)) (result (result (option $ia) (error $ec)))))
    (export "[method]resolve-address-stream.subscribe" (func (param "self" (borrow $ras)) (result (own $p))))))
  (alias export $wasi-sockets-ip-name-lookup "resolve-address-stream" (type $resolve-address-stream))

  (core module $Libc
    (memory (export "memory") 1)
    (global $heap (export "heap") (mut i32) (i32.const 8192))
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

  (core func $get-arguments
    (canon lower (func $wasi-cli-environment "get-arguments") (memory $memory) (realloc $realloc)))
  (core func $get-stdout (canon lower (func $wasi-cli-stdout "get-stdout")))
  (core func $blocking-write-and-flush
    (canon lower (func $wasi-io-streams "[method]output-stream.blocking-write-and-flush") (memory $memory)))
  (core func $block (canon lower (func $wasi-io-poll "[method]pollable.block")))
  (core func $instance-network (canon lower (func $wasi-sockets-instance-network "instance-network")))
  (core func $drop-output-stream (canon resource.drop $output-stream))
  (core func $drop-pollable (canon resource.drop $pollable))
  (core func $drop-network (canon resource.drop $network))
  (core func $resolve-addresses
    (canon lower (func $wasi-sockets-ip-name-lookup "resolve-addresses") (memory $memory)))
  (core func $resolve-next-address
    (canon lower (func $wasi-sockets-ip-name-lookup "[method]resolve-address-stream.resolve-next-address")
      (memory $memory)))
  (core func $subscribe
    (canon lower (func $wasi-sockets-ip-name-lookup "[method]resolve-address-stream.subscribe")))
  (core func $drop-stream (canon resource.drop $resolve-address-stream))

  (core module $Main
    (import "libc" "memory" (memory 1))
    (import "libc" "heap" (global $heap (mut i32)))
    (import "wasi" "get-arguments" (func $get-arguments (param i32)))
    (import "wasi" "get-stdout" (func $get-stdout (result i32)))
    (import "wasi" "blocking-write-and-flush" (func $blocking-write-and-flush (param i32 i32 i32 i32)))
    (import "wasi" "block" (func $block (param i32)))
    (import "wasi" "instance-network" (func $instance-network (result i32)))
    (import "wasi" "drop-output-stream" (func $drop-output-stream (param i32)))
    (import "wasi" "drop-pollable" (func $drop-pollable (param i32)))
    (import "wasi" "drop-network" (func $drop-network (param i32)))
    (import "wasi" "resolve-addresses" (func $resolve-addresses (param i32 i32 i32 i32)))
    (import "wasi" "resolve-next-address" (func $resolve-next-address (param i32 i32)))
    (import "wasi" "subscribe" (func $subscribe (param i32) (result i32)))
    (import "wasi" "drop-stream" (func $drop-stream (param i32)))

    (data (i32.const 96) "\n")
    (data (i32.const 98) ".:")
    (data (i32.const 112) "0123456789abcdef")
    (data (i32.const 128) "usage: lookup_name NAME\n")  ;; 24 bytes
    (data (i32.const 176) "resolve err ")         ;; 12
    (data (i32.const 192) "next err ")            ;; 9
    (data (i32.const 208) "ipv4 ")                ;; 5
    (data (i32.const 224) "ipv6 ")                ;; 5
    (data (i32.const 240) "done\n")               ;; 5

    (global $stdout (mut i32) (i32.const 0))
    (global $line-len (mut i32) (i32.const 0))

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
    (func $flush
      (call $write (global.get $stdout) (i32.const 1024) (global.get $line-len))
      (global.set $line-len (i32.const 0)))
    (func $emit (param $p i32) (param $n i32)
      (if (i32.gt_u (i32.add (global.get $line-len) (local.get $n)) (i32.const 4096))
        (then (call $flush)))
      (if (i32.gt_u (local.get $n) (i32.const 4096))
        (then (call $write (global.get $stdout) (local.get $p) (local.get $n)) (return)))
      (memory.copy (i32.add (i32.const 1024) (global.get $line-len)) (local.get $p) (local.get $n))
      (global.set $line-len (i32.add (global.get $line-len) (local.get $n))))
    ;; emit-u64(v): decimal, built backwards ending at 64.
    (func $emit-u64 (param $v i64)
      (local $p i32)
      (local.set $p (i32.const 64))
      (loop $digit
        (local.set $p (i32.sub (local.get $p) (i32.const 1)))
        (i32.store8 (local.get $p) (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $v) (i64.const 10)))))
        (local.set $v (i64.div_u (local.get $v) (i64.const 10)))
        (br_if $digit (i64.ne (local.get $v) (i64.const 0))))
      (call $emit (local.get $p) (i32.sub (i32.const 64) (local.get $p))))
    ;; fail(p, n, code): "<step> err NN\n", then the guest ends (status 0).
    (func $fail (param $p i32) (param $n i32) (param $code i32)
      (call $emit (local.get $p) (local.get $n))
      (i32.store8 (i32.const 80) (i32.add (i32.const 48) (i32.div_u (local.get $code) (i32.const 10))))
      (i32.store8 (i32.const 81) (i32.add (i32.const 48) (i32.rem_u (local.get $code) (i32.const 10))))
      (call $emit (i32.const 80) (i32.const 2))
      (call $emit (i32.const 96) (i32.const 1))
      (call $flush))
    ;; parse(p, n): the decimal number of n ASCII digits at p.
    (func $parse (param $p i32) (param $n i32) (result i32)
      (local $v i32)
      (block $done
        (loop $digit
          (br_if $done (i32.eqz (local.get $n)))
          (local.set $v (i32.add (i32.mul (local.get $v) (i32.const 10))
                                 (i32.sub (i32.load8_u (local.get $p)) (i32.const 48))))
          (local.set $p (i32.add (local.get $p) (i32.const 1)))
          (local.set $n (i32.sub (local.get $n) (i32.const 1)))
          (br $digit)))
      (local.get $v))

    ;; emit-hex(v): a u16 in hex, no leading zeros.
    (func $emit-hex (param $v i32)
      (local $p i32)
      (local.set $p (i32.const 64))
      (loop $digit
        (local.set $p (i32.sub (local.get $p) (i32.const 1)))
        (i32.store8 (local.get $p) (i32.load8_u (i32.add (i32.const 112) (i32.and (local.get $v) (i32.const 15)))))
        (local.set $v (i32.shr_u (local.get $v) (i32.const 4)))
        (br_if $digit (i32.ne (local.get $v) (i32.const 0))))
      (call $emit (local.get $p) (i32.sub (i32.const 64) (local.get $p))))

    (func (export "run") (result i32)
      (local $args i32) (local $net i32) (local $stream i32) (local $poll i32) (local $i i32)
      (global.set $stdout (call $get-stdout))
      (call $get-arguments (i32.const 0))
      (local.set $args (i32.load (i32.const 0)))
      (if (i32.lt_u (i32.load (i32.const 4)) (i32.const 2))
        (then (call $emit (i32.const 128) (i32.const 24)) (call $flush) (return (i32.const 0))))
      (local.set $net (call $instance-network))
      (call $resolve-addresses (local.get $net) (i32.load offset=8 (local.get $args))
        (i32.load offset=12 (local.get $args)) (i32.const 0))
      (if (i32.load8_u (i32.const 0))
        (then (call $fail (i32.const 176) (i32.const 12) (i32.load8_u (i32.const 4))) (return (i32.const 0))))
      (local.set $stream (i32.load (i32.const 4)))
      (local.set $poll (call $subscribe (local.get $stream)))
      (block $done
        (loop $next
          (call $resolve-next-address (local.get $stream) (i32.const 0))
          (if (i32.load8_u (i32.const 0))
            (then
              (if (i32.ne (i32.load8_u (i32.const 2)) (i32.const 8))  ;; not would-block
                (then (call $fail (i32.const 192) (i32.const 9) (i32.load8_u (i32.const 2))) (return (i32.const 0))))
              (call $block (local.get $poll))
              (br $next)))
          (br_if $done (i32.eqz (i32.load8_u (i32.const 2))))  ;; none: the end
          (if (i32.eqz (i32.load8_u (i32.const 4)))
            (then
              (call $emit (i32.const 208) (i32.const 5))
              (local.set $i (i32.const 0))
              (loop $octet
                (if (local.get $i) (then (call $emit (i32.const 98) (i32.const 1))))
                (call $emit-u64 (i64.extend_i32_u (i32.load8_u (i32.add (i32.const 6) (local.get $i)))))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br_if $octet (i32.lt_u (local.get $i) (i32.const 4)))))
            (else
              (call $emit (i32.const 224) (i32.const 5))
              (local.set $i (i32.const 0))
              (loop $group
                (if (local.get $i) (then (call $emit (i32.const 99) (i32.const 1))))
                (call $emit-hex (i32.load16_u (i32.add (i32.const 6) (i32.shl (local.get $i) (i32.const 1)))))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br_if $group (i32.lt_u (local.get $i) (i32.const 8))))))
          (call $emit (i32.const 96) (i32.const 1))
          (br $next)))
      (call $emit (i32.const 240) (i32.const 5))
      (call $flush)
      (call $drop-pollable (local.get $poll))
      (call $drop-stream (local.get $stream))
      (call $drop-network (local.get $net))
      (call $drop-output-stream (global.get $stdout))
      (i32.const 0)))

  (core instance $main (instantiate $Main
    (with "libc" (instance $libc))
    (with "wasi" (instance
      (export "get-arguments" (func $get-arguments))
      (export "get-stdout" (func $get-stdout))
      (export "blocking-write-and-flush" (func $blocking-write-and-flush))
      (export "block" (func $block))
      (export "instance-network" (func $instance-network))
      (export "drop-output-stream" (func $drop-output-stream))
      (export "drop-pollable" (func $drop-pollable))
      (export "drop-network" (func $drop-network))
      (export "resolve-addresses" (func $resolve-addresses))
      (export "resolve-next-address" (func $resolve-next-address))
      (export "subscribe" (func $subscribe))
      (export "drop-stream" (func $drop-stream))))))

  (func $run (result (result)) (canon lift (core func $main "run")))
  (instance $run-instance (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run-instance)))
