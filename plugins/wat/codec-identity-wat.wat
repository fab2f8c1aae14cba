;; codec-identity-wat: a correct codec in hand-written WebAssembly text.
;;
;; Proves that WAT is a plugin language like any other (it passes the codec
;; conformance suite): compress and decompress return their input unchanged.
;; `decompress` checks the input length against `expected-size` and returns
;; an `err` on mismatch. `init` accepts no parameters.
;;
;; Canonical ABI by hand (see plugins/README.md):
;; - `cabi_realloc` is a bump allocator over linear memory, growing it as
;;   needed; every `cabi_post_*` resets the bump pointer, so the memory of a
;;   call is reclaimed once the host has copied its result out.
;; - a `result<list<u8>, string>` is returned through a 12-byte area:
;;   tag (0 ok, 1 err) at +0, pointer at +4, length at +8.
(module
  (memory (export "memory") 1)
  ;; 0..16: return area; 16..64: error strings; heap from 1024.
  (data (i32.const 16) "unexpected size")
  (data (i32.const 32) "no parameters")
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

  ;; init(params) -> result<_, string>: ok only for an empty parameter list.
  (func (export "distlog:plugin/codec@0.1.0#init") (param $ptr i32) (param $len i32) (result i32)
    (if (local.get $len)
      (then
        (i32.store8 (i32.const 0) (i32.const 1))
        (i32.store (i32.const 4) (i32.const 32))
        (i32.store (i32.const 8) (i32.const 13))
        (return (i32.const 0))))
    (i32.store8 (i32.const 0) (i32.const 0))
    (i32.const 0))
  (func (export "cabi_post_distlog:plugin/codec@0.1.0#init") (param i32) (call $reset (i32.const 0)))

  ;; compress(input) -> ok(input): the input already lives in our memory.
  (func (export "distlog:plugin/codec@0.1.0#compress") (param $ptr i32) (param $len i32) (result i32)
    (i32.store8 (i32.const 0) (i32.const 0))
    (i32.store (i32.const 4) (local.get $ptr))
    (i32.store (i32.const 8) (local.get $len))
    (i32.const 0))
  (func (export "cabi_post_distlog:plugin/codec@0.1.0#compress") (param i32) (call $reset (i32.const 0)))

  ;; decompress(input, expected-size) -> ok(input) if its length is expected.
  (func (export "distlog:plugin/codec@0.1.0#decompress")
    (param $ptr i32) (param $len i32) (param $expected i32) (result i32)
    (if (i32.ne (local.get $len) (local.get $expected))
      (then
        (i32.store8 (i32.const 0) (i32.const 1))
        (i32.store (i32.const 4) (i32.const 16))
        (i32.store (i32.const 8) (i32.const 15))
        (return (i32.const 0))))
    (i32.store8 (i32.const 0) (i32.const 0))
    (i32.store (i32.const 4) (local.get $ptr))
    (i32.store (i32.const 8) (local.get $len))
    (i32.const 0))
  (func (export "cabi_post_distlog:plugin/codec@0.1.0#decompress") (param i32) (call $reset (i32.const 0)))
)
