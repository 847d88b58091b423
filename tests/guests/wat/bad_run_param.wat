;; bad_run_param.wat: exports wasi:cli/run@0.2.0 with the wrong signature `run: func(x: u32) -> result`;
;; a runtime must refuse it before running (nothing is printed, nothing imported).
(component
  (core module $Main
    (func (export "run") (param i32) (result i32) (i32.const 0)))
  (core instance $main (instantiate $Main))
  (func $run (param "x" u32) (result (result)) (canon lift (core func $main "run")))
  (instance $run-instance (export "run" (func $run)))
  (export "wasi:cli/run@0.2.0" (instance $run-instance)))
