;; udp_client.wat: a WASI 0.2 command, a UDP client with wasi-libc's call sequence.
;;
;;   udp_client FAMILY PORT MESSAGE     FAMILY 4 (127.0.0.1) or 6 (::1)
;;
;; create-udp-socket -> instance-network -> start-bind / finish-bind to the unspecified
;; address, port 0 (the implicit bind) -> stream(none) -> check-send (0: block on the
;; outgoing stream's pollable, then again) -> send one datagram MESSAGE to loopback:PORT ->
;; poll(incoming stream's pollable, a 2 s timer) -> receive(1). Prints "sent <n>\n", then
;; "got <data>\n" (from the datagram received) or "timeout\n"; "<step> err NN\n" (NN the
;; error-code case) when a step fails. With fewer arguments: "usage: udp_client 4|6 PORT MESSAGE\n".
;;
;; Canonical ABI (ret = 0; memory map in README.md):
;;   create-udp-socket, start-bind, finish-bind: as tcp_client.wat's create / start-connect.
;;   stream(self, option<ip-socket-address>, ret): core (self, 0 = none, 12 x i32, ret);
;;     +0 tag, +4 incoming, +8 outgoing | +4 u8 code.
;;   check-send(self, ret) -> result<u64, error-code>: +0 tag, +8 u64 | +8 u8 code.
;;   send(self, list<outgoing-datagram>, ret) -> result<u64, error-code>: as check-send.
;;     outgoing-datagram (44 bytes, at 512): +0 data ptr, +4 len, +8 u8 option tag,
;;     +12 u8 address case, +16 u16 port, ipv4 +18 four u8 | ipv6 +20 flow-info,
;;     +24 eight u16, +40 scope-id.
;;   receive(self, u64, ret) -> result<list<incoming-datagram>, error-code>: +0 tag, +4 ptr,
;;     +8 count | +4 u8 code; incoming-datagram (40 bytes): +0 data ptr, +4 len, +8 address.
;;   subscribe-duration(u64) -> own<pollable>  core (i64) -> i32.
;;   poll(list<borrow<pollable>>) -> list<u32>  core (ptr, len, ret): +0 ptr, +4 count.
(component
  (import "wasi:cli/environment@0.2.0" (instance $wasi-cli-environment
    (export "get-arguments" (func (result (list string))))))
  (import "wasi:io/error@0.2.0" (instance $wasi-io-error
    (export "error" (type (sub resource)))))
  (alias export $wasi-io-error "error" (type $error))
  (import "wasi:io/poll@0.2.0" (instance $wasi-io-poll
    (export "pollable" (type $pollable (sub resource)))
    (export "[method]pollable.block" (func (param "self" (borrow $pollable))))
    (export "poll" (func (param "in" (list (borrow $pollable))) (result (list u32))))))
  (alias export $wasi-io-poll "pollable" (type $pollable))
  (import "wasi:clocks/monotonic-clock@0.2.0" (instance $wasi-clocks-monotonic-clock
    (alias outer 1 $pollable (type $pollable'))
    (export "pollable" (type $p (eq $pollable')))
    (export "subscribe-duration" (func (param "when" u64) (result (own $p))))))
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
  (import "wasi:sockets/udp@0.2.0" (instance $wasi-sockets-udp
    (alias outer 1 $network (type $network'))
    (export "network" (type $n (eq $network')))
    (alias outer 1 $error-code (type $error-code'))
    (export "error-code" (type $ec (eq $error-code')))
    (alias outer 1 $ip-socket-address (type $isa'))
    (export "ip-socket-address" (type $isa (eq $isa')))
    (alias outer 1 $pollable (type $pollable'))
    (export "pollable" (type $p (eq $pollable')))
    (type $in-d' (record (field "data" (list u8)) (field "remote-address" $isa)))
    (export "incoming-datagram" (type $in-d (eq $in-d')))
    (type $out-d' (record (field "data" (list u8)) (field "remote-address" (option $isa))))
    (export "outgoing-datagram" (type $out-d (eq $out-d')))
    (export "udp-socket" (type $us (sub resource)))
    (export "incoming-datagram-stream" (type $ids (sub resource)))
    (export "outgoing-datagram-stream" (type $ods (sub resource)))
    (export "[method]udp-socket.start-bind"
      (func (param "self" (borrow $us)) (param "network" (borrow $n)) (param "local-address" $isa)
            (result (result (error $ec)))))
    (export "[method]udp-socket.finish-bind" (func (param "self" (borrow $us)) (result (result (error $ec)))))
    (export "[method]udp-socket.stream"
      (func (param "self" (borrow $us)) (param "remote-address" (option $isa))
            (result (result (tuple (own $ids) (own $ods)) (error $ec)))))
    (export "[method]incoming-datagram-stream.receive"
      (func (param "self" (borrow $ids)) (param "max-results" u64) (result (result (list $in-d) (error $ec)))))
    (export "[method]incoming-datagram-stream.subscribe" (func (param "self" (borrow $ids)) (result (own $p))))
    (export "[method]outgoing-datagram-stream.check-send"
      (func (param "self" (borrow $ods)) (result (result u64 (error $ec)))))
    (export "[method]outgoing-datagram-stream.send"
      (func (param "self" (borrow $ods)) (param "datagrams" (list $out-d)) (result (result u64 (error $ec)))))
    (export "[method]outgoing-datagram-stream.subscribe" (func (param "self" (borrow $ods)) (result (own $p))))))
  (alias export $wasi-sockets-udp "udp-socket" (type $udp-socket))
  (alias export $wasi-sockets-udp "incoming-datagram-stream" (type $incoming))
  (alias export $wasi-sockets-udp "outgoing-datagram-stream" (type $outgoing))
  (import "wasi:sockets/udp-create-socket@0.2.0" (instance $wasi-sockets-udp-create
    (alias outer 1 $error-code (type $error-code'))
    (export "error-code" (type $ec (eq $error-code')))
    (alias outer 1 $family (type $family'))
    (export "ip-address-family" (type $f (eq $family')))
    (alias outer 1 $udp-socket (type $udp-socket'))
    (export "udp-socket" (type $us (eq $udp-socket')))
    (export "create-udp-socket"
      (func (param "address-family" $f) (result (result (own $us) (error $ec)))))))

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
  (core func $poll (canon lower (func $wasi-io-poll "poll") (memory $memory) (realloc $realloc)))
  (core func $subscribe-duration (canon lower (func $wasi-clocks-monotonic-clock "subscribe-duration")))
  (core func $create-udp-socket
    (canon lower (func $wasi-sockets-udp-create "create-udp-socket") (memory $memory)))
  (core func $start-bind (canon lower (func $wasi-sockets-udp "[method]udp-socket.start-bind") (memory $memory)))
  (core func $finish-bind (canon lower (func $wasi-sockets-udp "[method]udp-socket.finish-bind") (memory $memory)))
  (core func $stream (canon lower (func $wasi-sockets-udp "[method]udp-socket.stream") (memory $memory)))
  (core func $receive
    (canon lower (func $wasi-sockets-udp "[method]incoming-datagram-stream.receive") (memory $memory) (realloc $realloc)))
  (core func $subscribe-in (canon lower (func $wasi-sockets-udp "[method]incoming-datagram-stream.subscribe")))
  (core func $check-send
    (canon lower (func $wasi-sockets-udp "[method]outgoing-datagram-stream.check-send") (memory $memory)))
  (core func $send (canon lower (func $wasi-sockets-udp "[method]outgoing-datagram-stream.send") (memory $memory)))
  (core func $subscribe-out (canon lower (func $wasi-sockets-udp "[method]outgoing-datagram-stream.subscribe")))
  (core func $drop-udp-socket (canon resource.drop $udp-socket))
  (core func $drop-incoming (canon resource.drop $incoming))
  (core func $drop-outgoing (canon resource.drop $outgoing))

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
    (import "wasi" "poll" (func $poll (param i32 i32 i32)))
    (import "wasi" "subscribe-duration" (func $subscribe-duration (param i64) (result i32)))
    (import "wasi" "create-udp-socket" (func $create-udp-socket (param i32 i32)))
    (import "wasi" "start-bind" (func $start-bind
      (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)))
    (import "wasi" "finish-bind" (func $finish-bind (param i32 i32)))
    (import "wasi" "stream" (func $stream (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32)))
    (import "wasi" "receive" (func $receive (param i32 i64 i32)))
    (import "wasi" "subscribe-in" (func $subscribe-in (param i32) (result i32)))
    (import "wasi" "check-send" (func $check-send (param i32 i32)))
    (import "wasi" "send" (func $send (param i32 i32 i32 i32)))
    (import "wasi" "subscribe-out" (func $subscribe-out (param i32) (result i32)))
    (import "wasi" "drop-udp-socket" (func $drop-udp-socket (param i32)))
    (import "wasi" "drop-incoming" (func $drop-incoming (param i32)))
    (import "wasi" "drop-outgoing" (func $drop-outgoing (param i32)))

    (data (i32.const 96) "\n")
    (data (i32.const 128) "usage: udp_client 4|6 PORT MESSAGE\n")  ;; 35 bytes, to 163
    (data (i32.const 176) "create err ")          ;; 11
    (data (i32.const 192) "bind err ")            ;; 9
    (data (i32.const 208) "stream err ")          ;; 11
    (data (i32.const 224) "send err ")            ;; 9
    (data (i32.const 240) "sent ")                ;; 5
    (data (i32.const 256) "got ")                 ;; 4
    (data (i32.const 272) "timeout\n")            ;; 8
    (data (i32.const 288) "receive err ")         ;; 12

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
      (local $args i32) (local $v6 i32) (local $port i32) (local $msg i32) (local $msg-len i32)
      (local $net i32) (local $sock i32) (local $in i32) (local $out i32) (local $p i32) (local $timer i32)
      (local $ready i32)
      (global.set $stdout (call $get-stdout))
      (call $get-arguments (i32.const 0))
      (local.set $args (i32.load (i32.const 0)))
      (if (i32.lt_u (i32.load (i32.const 4)) (i32.const 4))
        (then (call $emit (i32.const 128) (i32.const 35)) (call $flush) (return (i32.const 0))))
      (local.set $v6 (i32.eq (i32.load8_u (i32.load offset=8 (local.get $args))) (i32.const 54)))  ;; "6"
      (local.set $port (call $parse (i32.load offset=16 (local.get $args)) (i32.load offset=20 (local.get $args))))
      (local.set $msg (i32.load offset=24 (local.get $args)))
      (local.set $msg-len (i32.load offset=28 (local.get $args)))

      (call $create-udp-socket (local.get $v6) (i32.const 0))
      (if (i32.load8_u (i32.const 0))
        (then (call $fail (i32.const 176) (i32.const 11) (i32.load8_u (i32.const 4))) (return (i32.const 0))))
      (local.set $sock (i32.load (i32.const 4)))
      (local.set $net (call $instance-network))
      ;; the implicit bind: unspecified address, port 0, of the socket's family
      (call $start-bind (local.get $sock) (local.get $net) (local.get $v6)
        (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
        (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
      (if (i32.load8_u (i32.const 0))
        (then (call $fail (i32.const 192) (i32.const 9) (i32.load8_u (i32.const 1))) (return (i32.const 0))))
      (call $finish-bind (local.get $sock) (i32.const 0))
      (if (i32.load8_u (i32.const 0))
        (then (call $fail (i32.const 192) (i32.const 9) (i32.load8_u (i32.const 1))) (return (i32.const 0))))
      (call $stream (local.get $sock) (i32.const 0)
        (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0)
        (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))
      (if (i32.load8_u (i32.const 0))
        (then (call $fail (i32.const 208) (i32.const 11) (i32.load8_u (i32.const 4))) (return (i32.const 0))))
      (local.set $in (i32.load (i32.const 4)))
      (local.set $out (i32.load (i32.const 8)))

      (block $permitted
        (loop $again
          (call $check-send (local.get $out) (i32.const 0))
          (if (i32.load8_u (i32.const 0))
            (then (call $fail (i32.const 224) (i32.const 9) (i32.load8_u (i32.const 8))) (return (i32.const 0))))
          (br_if $permitted (i64.ne (i64.load (i32.const 8)) (i64.const 0)))
          (local.set $p (call $subscribe-out (local.get $out)))
          (call $block (local.get $p))
          (call $drop-pollable (local.get $p))
          (br $again)))
      ;; the datagram at 512: data, then some(loopback:PORT)
      (memory.fill (i32.const 512) (i32.const 0) (i32.const 44))
      (i32.store (i32.const 512) (local.get $msg))
      (i32.store (i32.const 516) (local.get $msg-len))
      (i32.store8 (i32.const 520) (i32.const 1))
      (i32.store8 (i32.const 524) (local.get $v6))
      (i32.store16 (i32.const 528) (local.get $port))
      (if (local.get $v6)
        (then (i32.store16 (i32.const 550) (i32.const 1)))   ;; ::1: the last of the eight u16 at 536
        (else (i32.store8 (i32.const 530) (i32.const 127)) (i32.store8 (i32.const 533) (i32.const 1))))
      (call $send (local.get $out) (i32.const 512) (i32.const 1) (i32.const 0))
      (if (i32.load8_u (i32.const 0))
        (then (call $fail (i32.const 224) (i32.const 9) (i32.load8_u (i32.const 8))) (return (i32.const 0))))
      (call $emit (i32.const 240) (i32.const 5))
      (call $emit-u64 (i64.load (i32.const 8)))
      (call $emit (i32.const 96) (i32.const 1))

      ;; wait for a reply, at most 2 s
      (local.set $p (call $subscribe-in (local.get $in)))
      (local.set $timer (call $subscribe-duration (i64.const 2000000000)))
      (i32.store (i32.const 600) (local.get $p))
      (i32.store (i32.const 604) (local.get $timer))
      (call $poll (i32.const 600) (i32.const 2) (i32.const 0))
      (local.set $ready (i32.const 0))
      (if (i32.eqz (i32.load (i32.load (i32.const 0))))  ;; the first index reported is 0: incoming
        (then (local.set $ready (i32.const 1))))
      (if (i32.gt_u (i32.load (i32.const 4)) (i32.const 1))  ;; both reported
        (then (local.set $ready (i32.const 1))))
      (call $drop-pollable (local.get $timer))
      (call $drop-pollable (local.get $p))
      (if (local.get $ready)
        (then
          (call $receive (local.get $in) (i64.const 1) (i32.const 0))
          (if (i32.load8_u (i32.const 0))
            (then (call $fail (i32.const 288) (i32.const 12) (i32.load8_u (i32.const 4))) (return (i32.const 0))))
          (if (i32.load (i32.const 8))
            (then
              (call $emit (i32.const 256) (i32.const 4))
              (call $emit (i32.load (i32.load (i32.const 4))) (i32.load offset=4 (i32.load (i32.const 4))))
              (call $emit (i32.const 96) (i32.const 1)))
            (else (call $emit (i32.const 272) (i32.const 8)))))
        (else (call $emit (i32.const 272) (i32.const 8))))
      (call $flush)
      (call $drop-incoming (local.get $in))
      (call $drop-outgoing (local.get $out))
      (call $drop-udp-socket (local.get $sock))
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
      (export "poll" (func $poll))
      (export "subscribe-duration" (func $subscribe-duration))
      (export "create-udp-socket" (func $create-udp-socket))
      (export "start-bind" (func $start-bind))
      (export "finish-bind" (func $finish-bind))
      (export "stream" (func $stream))
      (export "receive" (func $receive))
      (export "subscribe-in" (func $subscribe-in))
      (export "check-send" (func $check-send))
      (export "send" (func $send))
      (export "subscribe-out" (func $subscribe-out))
      (export "drop-udp-socket" (func $drop-udp-socket))
      (export "drop-incoming" (func $drop-incoming))
      (export "drop-outgoing" (func $drop-outgoing))))))

  (func $run (result (result)) (canon lift (core func $main "run")))
  (instance $run-instance (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run-instance)))
