;; bad_run_string.wat: exports wasi:cli/run@0.2.0 with the wrong signature `run: func() -> string`;
;; a runtime must refuse it before running.
(component
  (core module $Main
    (memory (export "memory") 1)
    (func (export "run") (result i32) (i32.const 0))
    (func (export "realloc") (param i32 i32 i32 i32) (result i32) (i32.const 64)))
  (core instance $main (instantiate $Main))
  (alias core export $main "memory" (core memory $memory))
  (func $run (result string) (canon lift (core func $main "run") (memory $memory)))
  (instance $run-instance (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run-instance)))
