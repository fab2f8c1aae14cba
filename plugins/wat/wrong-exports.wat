;; wrong-exports: a component that claims to export `distlog:plugin/codec@0.1.0`
;; with the wrong signatures (see wrong-exports-wit/world.wit): init takes no
;; params and returns a bool, compress takes a string and returns a u32,
;; decompress is missing. The host's type check must refuse it at load with a
;; clear error naming the mismatch; it never runs.
(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "cabi_realloc")
    (param i32 i32 i32) (param $new_size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.add (local.get $ptr) (i32.add (local.get $new_size) (i32.const 8))))
    (local.get $ptr))
  (func (export "distlog:plugin/codec@0.1.0#init") (result i32)
    (i32.const 1))
  (func (export "distlog:plugin/codec@0.1.0#compress") (param i32 i32) (result i32)
    (local.get 1))
)
