;; A codec in WAT: "store" (no compression). `compress` returns its input
;; unchanged; `decompress` checks that the input has `expected-size` bytes
;; and returns it. `init` takes no parameters.
(module
  (import "distlog:plugin/host@0.1.0" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 1)
  ;; 0..12: return area. Static strings from 16. Heap from 1024.
  (data (i32.const 16) "payload size differs from expected-size")   ;; 39 bytes
  (data (i32.const 64) "this codec takes no parameters")            ;; 30 bytes
  (data (i32.const 96) "wat store codec ready")                     ;; 21 bytes
  (global $heap (mut i32) (i32.const 1024))

  ;; cabi_realloc(old ptr, old size, align, new size) -> ptr: a bump
  ;; allocator that grows memory when needed; every cabi_post_* resets it.
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

  ;; Writes err(string at $ptr, $len) to the return area and returns it.
  (func $err (param $ptr i32) (param $len i32) (result i32)
    (i32.store8 (i32.const 0) (i32.const 1))
    (i32.store (i32.const 4) (local.get $ptr))
    (i32.store (i32.const 8) (local.get $len))
    (i32.const 0))
  ;; Writes ok(list at $ptr, $len) to the return area and returns it.
  (func $ok (param $ptr i32) (param $len i32) (result i32)
    (i32.store8 (i32.const 0) (i32.const 0))
    (i32.store (i32.const 4) (local.get $ptr))
    (i32.store (i32.const 8) (local.get $len))
    (i32.const 0))

  ;; init(params) -> result<_, string>: ok for an empty list, else err.
  (func (export "distlog:plugin/codec@0.1.0#init") (param $ptr i32) (param $len i32) (result i32)
    (if (local.get $len) (then (return (call $err (i32.const 64) (i32.const 30)))))
    (call $log (i32.const 1) (i32.const 96) (i32.const 21))
    (i32.store8 (i32.const 0) (i32.const 0))
    (i32.const 0))
  (func (export "cabi_post_distlog:plugin/codec@0.1.0#init") (param i32) (call $reset (i32.const 0)))

  ;; compress(input: list<u8>) -> result<list<u8>, string>
  ;; Core: (param ptr len) (result i32 = pointer to the 12-byte result area).
  (func (export "distlog:plugin/codec@0.1.0#compress") (param $ptr i32) (param $len i32) (result i32)
    (call $ok (local.get $ptr) (local.get $len)))
  (func (export "cabi_post_distlog:plugin/codec@0.1.0#compress") (param i32) (call $reset (i32.const 0)))

  ;; decompress(input: list<u8>, expected-size: u32) -> result<list<u8>, string>
  ;; Core: (param ptr len expected-size) (result i32).
  (func (export "distlog:plugin/codec@0.1.0#decompress")
    (param $ptr i32) (param $len i32) (param $expected i32) (result i32)
    (if (i32.ne (local.get $len) (local.get $expected))
      (then (return (call $err (i32.const 16) (i32.const 39)))))
    (call $ok (local.get $ptr) (local.get $len)))
  (func (export "cabi_post_distlog:plugin/codec@0.1.0#decompress") (param i32) (call $reset (i32.const 0)))
)
