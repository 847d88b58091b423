;; tcp_server.wat: a WASI 0.2 command, a TCP server that serves one connection.
;;
;;   tcp_server FAMILY PORT        FAMILY 4 (127.0.0.1) or 6 (::1); PORT 0: any free port
;;
;; create-tcp-socket -> instance-network -> start-bind / finish-bind -> start-listen /
;; finish-listen -> local-address, printed as "listening <port>\n" (flushed at once, so a
;; client knows where to connect) -> subscribe -> accept (would-block: pollable.block, then
;; again) -> blocking-read until a newline or the end -> writes back "echo: <line>" ->
;; prints "served <line>" and exits 0. A failing step prints "<step> err NN\n" (NN the
;; error-code case). With fewer arguments: "usage: tcp_server 4|6 PORT\n".
;;
;; Canonical ABI as in tcp_client.wat, and (ret = 0):
;;   start-bind(self, network, ip-socket-address) -> result<_, error-code>: as start-connect.
;;   finish-bind / start-listen / finish-listen (self, ret): +0 tag, +1 u8 code.
;;   local-address(self, ret) -> result<ip-socket-address, error-code>: +0 tag, +4 u8 case,
;;     +8 u16 port (both cases) | +4 u8 code.
;;   accept(self, ret) -> result<tuple<own<tcp-socket>, own<input-stream>,
;;     own<output-stream>>, error-code>: +0 tag, +4 socket, +8 in, +12 out | +4 u8 code.
(component
  (import "wasi:cli/environment@0.2.0" (instance $wasi-cli-environment
    (export "get-arguments" (func (result (list string))))))
  (import "wasi:io/error@0.2.0" (instance $wasi-io-error
    (export "error" (type (sub resource)))))
  (alias export $wasi-io-error "error" (type $error))
  (import "wasi:io/poll@0.2.0" (instance $wasi-io-poll
    (export "pollable" (type $pollable (sub resource)))
    (export "[method]pollable.block" (func (param "self" (borrow $pollable))))))
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
    (export "ip-socket-address" (type (eq $isa')))))
  (alias export $wasi-sockets-network "network" (type $network))
  (alias export $wasi-sockets-network "error-code" (type $error-code))
  (alias export $wasi-sockets-network "ip-address-family" (type $family))
  (alias export $wasi-sockets-network "ip-socket-address" (type $ip-socket-address))
  (import "wasi:sockets/instance-network@0.2.0" (instance $wasi-sockets-instance-network
    (alias outer 1 $network (type $network'))
    (export "network" (type $n (eq $network')))
    (export "instance-network" (func (result (own $n))))))
  (import "wasi:sockets/tcp@0.2.0" (instance $wasi-sockets-tcp
    (alias outer 1 $network (type $network'))
    (export "network" (type $n (eq $network')))
    (alias outer 1 $error-code (type $error-code'))
    (export "error-code" (type $ec (eq $error-code')))
    (alias outer 1 $ip-socket-address (type $isa'))
    (export "ip-socket-address" (type $isa (eq $isa')))
    (alias outer 1 $input-stream (type $input-stream'))
    (export "input-stream" (type $is (eq $input-stream')))
    (alias outer 1 $output-stream (type $output-stream'))
    (export "output-stream" (type $os (eq $output-stream')))
    (alias outer 1 $pollable (type $pollable'))
    (export "pollable" (type $p (eq $pollable')))
    (export "tcp-socket" (type $ts (sub resource)))
    (export "[method]tcp-socket.start-connect"
      (func (param "self" (borrow $ts)) (param "network" (borrow $n)) (param "remote-address" $isa)
            (result (result (error $ec)))))
    (export "[method]tcp-socket.finish-connect"
      (func (param "self" (borrow $ts)) (result (result (tuple (own $is) (own $os)) (error $ec)))))
    (export "[method]tcp-socket.subscribe" (func (param "self" (borrow $ts)) (result (own $p))))
    (export "[method]tcp-socket.start-bind"
      (func (param "self" (borrow $ts)) (param "network" (borrow $n)) (param "local-address" $isa)
            (result (result (error $ec)))))
    (export "[method]tcp-socket.finish-bind" (func (param "self" (borrow $ts)) (result (result (error $ec)))))
    (export "[method]tcp-socket.start-listen" (func (param "self" (borrow $ts)) (result (result (error $ec)))))
    (export "[method]tcp-socket.finish-listen" (func (param "self" (borrow $ts)) (result (result (error $ec)))))
    (export "[method]tcp-socket.local-address"
      (func (param "self" (borrow $ts)) (result (result $isa (error $ec)))))
    (export "[method]tcp-socket.accept"
      (func (param "self" (borrow $ts)) (result (result (tuple (own $ts) (own $is) (own $os)) (error $ec)))))))
  (alias export $wasi-sockets-tcp "tcp-socket" (type $tcp-socket))
  (import "wasi:sockets/tcp-create-socket@0.2.0" (instance $wasi-sockets-tcp-create
    (alias outer 1 $error-code (type $error-code'))
    (export "error-code" (type $ec (eq $error-code')))
    (alias outer 1 $family (type $family'))
    (export "ip-address-family" (type $f (eq $family')))
    (alias outer 1 $tcp-socket (type $tcp-socket'))
    (export "tcp-socket" (type $ts (eq $tcp-socket')))
    (export "create-tcp-socket"
      (func (param "address-family" $f) (result (result (own $ts) (error $ec)))))))

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
  (core func $blocking-read
    (canon lower (func $wasi-io-streams "[method]input-stream.blocking-read") (memory $memory) (realloc $realloc)))
  (core func $block (canon lower (func $wasi-io-poll "[method]pollable.block")))
  (core func $instance-network (canon lower (func $wasi-sockets-instance-network "instance-network")))
  (core func $create-tcp-socket
    (canon lower (func $wasi-sockets-tcp-create "create-tcp-socket") (memory $memory)))
  (core func $start-connect
    (canon lower (func $wasi-sockets-tcp "[method]tcp-socket.start-connect") (memory $memory)))
  (core func $finish-connect
    (canon lower (func $wasi-sockets-tcp "[method]tcp-socket.finish-connect") (memory $memory)))
  (core func $subscribe (canon lower (func $wasi-sockets-tcp "[method]tcp-socket.subscribe")))
  (core func $start-bind
    (canon lower (func $wasi-sockets-tcp "[method]tcp-socket.start-bind") (memory $memory)))
  (core func $finish-bind
    (canon lower (func $wasi-sockets-tcp "[method]tcp-socket.finish-bind") (memory $memory)))
  (core func $start-listen
    (canon lower (func $wasi-sockets-tcp "[method]tcp-socket.start-listen") (memory $memory)))
  (core func $finish-listen
    (canon lower (func $wasi-sockets-tcp "[method]tcp-socket.finish-listen") (memory $memory)))
  (core func $local-address
    (canon lower (func $wasi-sockets-tcp "[method]tcp-socket.local-address") (memory $memory)))
  (core func $accept
    (canon lower (func $wasi-sockets-tcp "[method]tcp-socket.accept") (memory $memory)))
  (core func $drop-output-stream (canon resource.drop $output-stream))
  (core func $drop-input-stream (canon resource.drop $input-stream))
  (core func $drop-pollable (canon resource.drop $pollable))
  (core func $drop-tcp-socket (canon resource.drop $tcp-socket))
  (core func $drop-network (canon resource.drop $network))

  (core module $Main
    (import "libc" "memory" (memory 1))
    (import "libc" "heap" (global $heap (mut i32)))
    (import "wasi" "get-arguments" (func $get-arguments (param i32)))
    (import "wasi" "get-stdout" (func $get-stdout (result i32)))
    (import "wasi" "blocking-write-and-flush" (func $blocking-write-and-flush (param i32 i32 i32 i32)))
    (import "wasi" "blocking-read" (func $blocking-read (param i32 i64 i32)))
    (import "wasi" "block" (func $block (param i32)))
    (import "wasi" "instance-network" (func $instance-network (result i32)))
    (import "wasi" "create-tcp-socket" (func $create-tcp-socket (param i32 i32)))
    (import "wasi" "start-connect" (func $start-connect
      (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)))
    (import "wasi" "finish-connect" (func $finish-connect (param i32 i32)))
    (import "wasi" "subscribe" (func $subscribe (param i32) (result i32)))
    (import "wasi" "start-bind" (func $start-bind
      (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)))
    (import "wasi" "finish-bind" (func $finish-bind (param i32 i32)))
    (import "wasi" "start-listen" (func $start-listen (param i32 i32)))
    (import "wasi" "finish-listen" (func $finish-listen (param i32 i32)))
    (import "wasi" "local-address" (func $local-address (param i32 i32)))
    (import "wasi" "accept" (func $accept (param i32 i32)))
    (import "wasi" "drop-output-stream" (func $drop-output-stream (param i32)))
    (import "wasi" "drop-input-stream" (func $drop-input-stream (param i32)))
    (import "wasi" "drop-pollable" (func $drop-pollable (param i32)))
    (import "wasi" "drop-tcp-socket" (func $drop-tcp-socket (param i32)))
    (import "wasi" "drop-network" (func $drop-network (param i32)))

    (data (i32.const 96) "\n")
    (data (i32.const 128) "usage: tcp_server 4|6 PORT\n")  ;; 27 bytes, to 155
    (data (i32.const 176) "create err ")          ;; 11
    (data (i32.const 192) "bind err ")            ;; 9
    (data (i32.const 208) "listen err ")          ;; 11
    (data (i32.const 224) "accept err ")          ;; 11
    (data (i32.const 240) "listening ")           ;; 10
    (data (i32.const 256) "served ")              ;; 7
    (data (i32.const 272) "closed\n")             ;; 7
    (data (i32.const 288) "echo: ")               ;; 6
    (data (i32.const 304) "address err ")         ;; 12

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

    (func (export "run") (result i32)
      (local $args i32) (local $v6 i32) (local $port i32)
      (local $net i32) (local $sock i32) (local $poll i32) (local $conn i32) (local $in i32) (local $out i32)
      (local $ptr i32) (local $len i32) (local $got i32)
      (global.set $stdout (call $get-stdout))
      (call $get-arguments (i32.const 0))
      (local.set $args (i32.load (i32.const 0)))
      (if (i32.lt_u (i32.load (i32.const 4)) (i32.const 3))
        (then (call $emit (i32.const 128) (i32.const 27)) (call $flush) (return (i32.const 0))))
      (local.set $v6 (i32.eq (i32.load8_u (i32.load offset=8 (local.get $args))) (i32.const 54)))  ;; "6"
      (local.set $port (call $parse (i32.load offset=16 (local.get $args)) (i32.load offset=20 (local.get $args))))

      (call $create-tcp-socket (local.get $v6) (i32.const 0))
      (if (i32.load8_u (i32.const 0))
        (then (call $fail (i32.const 176) (i32.const 11) (i32.load8_u (i32.const 4))) (return (i32.const 0))))
      (local.set $sock (i32.load (i32.const 4)))
      (local.set $net (call $instance-network))
      (if (local.get $v6)
        (then (call $start-bind (local.get $sock) (local.get $net) (i32.const 1)
                (local.get $port) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
                (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 0) (i32.const 0)))
        (else (call $start-bind (local.get $sock) (local.get $net) (i32.const 0)
                (local.get $port) (i32.const 127) (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 0)
                (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))))
      (if (i32.load8_u (i32.const 0))
        (then (call $fail (i32.const 192) (i32.const 9) (i32.load8_u (i32.const 1))) (return (i32.const 0))))
      (call $finish-bind (local.get $sock) (i32.const 0))
      (if (i32.load8_u (i32.const 0))
        (then (call $fail (i32.const 192) (i32.const 9) (i32.load8_u (i32.const 1))) (return (i32.const 0))))
      (call $start-listen (local.get $sock) (i32.const 0))
      (if (i32.load8_u (i32.const 0))
        (then (call $fail (i32.const 208) (i32.const 11) (i32.load8_u (i32.const 1))) (return (i32.const 0))))
      (call $finish-listen (local.get $sock) (i32.const 0))
      (if (i32.load8_u (i32.const 0))
        (then (call $fail (i32.const 208) (i32.const 11) (i32.load8_u (i32.const 1))) (return (i32.const 0))))
      (call $local-address (local.get $sock) (i32.const 0))
      (if (i32.load8_u (i32.const 0))
        (then (call $fail (i32.const 304) (i32.const 12) (i32.load8_u (i32.const 4))) (return (i32.const 0))))
      (call $emit (i32.const 240) (i32.const 10))
      (call $emit-u64 (i64.extend_i32_u (i32.load16_u (i32.const 8))))
      (call $emit (i32.const 96) (i32.const 1))
      (call $flush)

      (local.set $poll (call $subscribe (local.get $sock)))
      (block $accepted
        (loop $again
          (call $accept (local.get $sock) (i32.const 0))
          (br_if $accepted (i32.eqz (i32.load8_u (i32.const 0))))
          (if (i32.ne (i32.load8_u (i32.const 4)) (i32.const 8))  ;; not would-block
            (then (call $fail (i32.const 224) (i32.const 11) (i32.load8_u (i32.const 4))) (return (i32.const 0))))
          (call $block (local.get $poll))
          (br $again)))
      (call $drop-pollable (local.get $poll))
      (local.set $conn (i32.load (i32.const 4)))
      (local.set $in (i32.load (i32.const 8)))
      (local.set $out (i32.load (i32.const 12)))

      ;; the line, gathered at 6144 + 6 (after "echo: ")
      (memory.copy (i32.const 6144) (i32.const 288) (i32.const 6))
      (block $end
        (loop $read
          (call $blocking-read (local.get $in) (i64.const 1024) (i32.const 0))
          (br_if $end (i32.load8_u (i32.const 0)))
          (local.set $ptr (i32.load (i32.const 4)))
          (local.set $len (i32.load (i32.const 8)))
          (memory.copy (i32.add (i32.const 6150) (local.get $got)) (local.get $ptr) (local.get $len))
          (local.set $got (i32.add (local.get $got) (local.get $len)))
          (br_if $end (i32.and (i32.ne (local.get $len) (i32.const 0))
                               (i32.eq (i32.load8_u (i32.sub (i32.add (local.get $ptr) (local.get $len)) (i32.const 1)))
                                       (i32.const 10))))
          (br_if $end (i32.gt_u (local.get $got) (i32.const 1000)))
          (br $read)))
      (call $write (local.get $out) (i32.const 6144) (i32.add (local.get $got) (i32.const 6)))
      (call $emit (i32.const 256) (i32.const 7))
      (call $emit (i32.const 6150) (local.get $got))
      (call $flush)
      (call $drop-input-stream (local.get $in))
      (call $drop-output-stream (local.get $out))
      (call $drop-tcp-socket (local.get $conn))
      (call $drop-tcp-socket (local.get $sock))
      (call $drop-network (local.get $net))
      (call $drop-output-stream (global.get $stdout))
      (i32.const 0)))

  (core instance $main (instantiate $Main
    (with "libc" (instance $libc))
    (with "wasi" (instance
      (export "get-arguments" (func $get-arguments))
      (export "get-stdout" (func $get-stdout))
      (export "blocking-write-and-flush" (func $blocking-write-and-flush))
      (export "blocking-read" (func $blocking-read))
      (export "block" (func $block))
      (export "instance-network" (func $instance-network))
      (export "create-tcp-socket" (func $create-tcp-socket))
      (export "start-connect" (func $start-connect))
      (export "finish-connect" (func $finish-connect))
      (export "subscribe" (func $subscribe))
      (export "start-bind" (func $start-bind))
      (export "finish-bind" (func $finish-bind))
      (export "start-listen" (func $start-listen))
      (export "finish-listen" (func $finish-listen))
      (export "local-address" (func $local-address))
      (export "accept" (func $accept))
      (export "drop-output-stream" (func $drop-output-stream))
      (export "drop-input-stream" (func $drop-input-stream))
      (export "drop-pollable" (func $drop-pollable))
      (export "drop-tcp-socket" (func $drop-tcp-socket))
      (export "drop-network" (func $drop-network))))))

  (func $run (result (result)) (canon lift (core func $main "run")))
  (instance $run-instance (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run-instance)))
