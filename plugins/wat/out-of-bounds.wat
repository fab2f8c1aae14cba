;; out-of-bounds: a codec that tries to reach memory that is not its own.
;; compress stores to an address far beyond its linear memory (the store
;; traps: wasm bounds-checks every access); decompress returns a list whose
;; pointer and length lie outside its memory (the host's lifting of the
;; result must fail the call instead of reading anything else). Either way
;; the call fails and nothing outside the instance is touched.
;;
;; A test fixture for the plugin host (plugins/dist/fixtures/); the canonical
;; ABI is written by hand as in codec-identity-wat.wat.
(module
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))

  (func $realloc (export "cabi_realloc")
    (param $old i32) (param $old_size i32) (param $align i32) (param $new_size i32)
    (result i32)
    (local $ptr i32) (local $end i32) (local $have i32)
    (local.set $ptr
      (i32.and
        (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
        (i32.sub (i32.const 0) (local.get $align))))
    (local.set $end (i32.add (local.get $ptr) (local.get $new_size)))
    (if (i32.lt_u (local.get $end) (local.get $ptr)) (then unreachable))
    (local.set $have (i32.shl (memory.size) (i32.const 16)))
    (if (i32.gt_u (local.get $end) (local.get $have))
      (then
        (if (i32.eq
              (memory.grow
                (i32.shr_u
                  (i32.add (i32.sub (local.get $end) (local.get $have)) (i32.const 65535))
                  (i32.const 16)))
              (i32.const -1))
          (then unreachable))))
    (if (local.get $old_size)
      (then (memory.copy (local.get $ptr) (local.get $old) (local.get $old_size))))
    (global.set $heap (local.get $end))
    (local.get $ptr))

  (func $reset (param i32) (global.set $heap (i32.const 1024)))

  ;; init(params) -> ok: accepts anything, so the misbehaviour shows in the calls.
  (func (export "distlog:plugin/codec@0.1.0#init") (param i32 i32) (result i32)
    (i32.store8 (i32.const 0) (i32.const 0))
    (i32.const 0))
  (func (export "cabi_post_distlog:plugin/codec@0.1.0#init") (param i32) (call $reset (i32.const 0)))

  (func (export "distlog:plugin/codec@0.1.0#compress") (param $ptr i32) (param $len i32) (result i32)
    (i32.store (i32.const 0xfffffff0) (i32.const 0x0badf00d))
    (i32.const 0))
  (func (export "cabi_post_distlog:plugin/codec@0.1.0#compress") (param i32) (call $reset (i32.const 0)))

  (func (export "distlog:plugin/codec@0.1.0#decompress")
    (param $ptr i32) (param $len i32) (param $expected i32) (result i32)
    (i32.store8 (i32.const 0) (i32.const 0))
    (i32.store (i32.const 4) (i32.const 0x7fff0000))
    (i32.store (i32.const 8) (local.get $expected))
    (i32.const 0))
  (func (export "cabi_post_distlog:plugin/codec@0.1.0#decompress") (param i32) (call $reset (i32.const 0)))
)
