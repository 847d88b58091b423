;; sockets.wat: a WASI 0.2 command that asks for a TCP socket and prints what it got:
;;   "tcp ok\n", or "tcp err <n>\n" with n the wasi:sockets/network error-code case index
;;   (1 = access-denied: no grant, as under wasmtime).
;;
;; create-tcp-socket(address-family) -> result<own<tcp-socket>, error-code>
;;   core: (family i32, ret i32); at ret (8 bytes): +0 u8 0=ok 1=err;
;;   +4 i32 the socket handle (ok) or u8 the error-code case (err).
;; blocking-write-and-flush(self, contents) -> result<_, stream-error>: as in exit.wat,
;;   the result is ignored.
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
    (export "ip-address-family" (type (eq $family')))))
  (alias export $wasi-sockets-network "error-code" (type $error-code))
  (alias export $wasi-sockets-network "ip-address-family" (type $family))
  (import "wasi:sockets/tcp@0.2.0" (instance $wasi-sockets-tcp
    (export "tcp-socket" (type (sub resource)))))
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
    (memory (export "memory") 1))
  (core instance $libc (instantiate $Libc))
  (alias core export $libc "memory" (core memory $memory))

  (core func $get-stdout (canon lower (func $wasi-cli-stdout "get-stdout")))
  (core func $blocking-write-and-flush
    (canon lower (func $wasi-io-streams "[method]output-stream.blocking-write-and-flush")
      (memory $memory)))
  (core func $drop-output-stream (canon resource.drop $output-stream))
  (core func $create-tcp-socket
    (canon lower (func $wasi-sockets-tcp-create "create-tcp-socket") (memory $memory)))
  (core func $drop-tcp-socket (canon resource.drop $tcp-socket))

  (core module $Main
    (import "libc" "memory" (memory 1))
    (import "wasi" "get-stdout" (func $get-stdout (result i32)))
    (import "wasi" "blocking-write-and-flush" (func $blocking-write-and-flush (param i32 i32 i32 i32)))
    (import "wasi" "drop-output-stream" (func $drop-output-stream (param i32)))
    (import "wasi" "create-tcp-socket" (func $create-tcp-socket (param i32 i32)))
    (import "wasi" "drop-tcp-socket" (func $drop-tcp-socket (param i32)))

    (data (i32.const 128) "tcp ok\n")      ;; 7 bytes
    (data (i32.const 144) "tcp err __\n")  ;; 11 bytes; the two digits go at 152

    (func (export "run") (result i32)
      (local $stdout i32) (local $code i32)
      (local.set $stdout (call $get-stdout))
      (call $create-tcp-socket (i32.const 0) (i32.const 64))  ;; ipv4, result at 64
      (if (i32.eqz (i32.load8_u (i32.const 64)))
        (then
          (call $drop-tcp-socket (i32.load (i32.const 68)))
          (call $blocking-write-and-flush (local.get $stdout) (i32.const 128) (i32.const 7) (i32.const 0)))
        (else
          (local.set $code (i32.load8_u (i32.const 68)))
          (i32.store8 (i32.const 152) (i32.add (i32.const 48) (i32.div_u (local.get $code) (i32.const 10))))
          (i32.store8 (i32.const 153) (i32.add (i32.const 48) (i32.rem_u (local.get $code) (i32.const 10))))
          (call $blocking-write-and-flush (local.get $stdout) (i32.const 144) (i32.const 11) (i32.const 0))))
      (call $drop-output-stream (local.get $stdout))
      (i32.const 0)))

  (core instance $main (instantiate $Main
    (with "libc" (instance $libc))
    (with "wasi" (instance
      (export "get-stdout" (func $get-stdout))
      (export "blocking-write-and-flush" (func $blocking-write-and-flush))
      (export "drop-output-stream" (func $drop-output-stream))
      (export "create-tcp-socket" (func $create-tcp-socket))
      (export "drop-tcp-socket" (func $drop-tcp-socket))))))

  (func $run (result (result)) (canon lift (core func $main "run")))
  (instance $run-instance (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run-instance)))
