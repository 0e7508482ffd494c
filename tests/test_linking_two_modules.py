"""Wasm-to-wasm linking (issue 3): an application module imports a library
module's memory, functions, global and table; the two call each other, and
strings travel through the library's allocator."""

from asyncwasm import Linker, Module
from tests.wat import wat

LIBRARY = """
(module
  (memory (export "memory") 1)
  (global $heap (export "heap") (mut i32) (i32.const 1024))
  (table (export "callbacks") 1 funcref)
  (type $notify (func (param i32 i32)))

  ;; bump allocator, 8-byte aligned
  (func $alloc (export "alloc") (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap
      (i32.and (i32.add (i32.add (local.get $p) (local.get $n)) (i32.const 7)) (i32.const -8)))
    (local.get $p))

  ;; uppercase ASCII in place, then tell the registered callback
  (func (export "upper") (param $p i32) (param $len i32)
    (local $i i32) (local $c i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (local.set $c (i32.load8_u (i32.add (local.get $p) (local.get $i))))
        (if (i32.and (i32.ge_u (local.get $c) (i32.const 97)) (i32.le_u (local.get $c) (i32.const 122)))
          (then (i32.store8 (i32.add (local.get $p) (local.get $i)) (i32.sub (local.get $c) (i32.const 32)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (call_indirect (type $notify) (local.get $p) (local.get $len) (i32.const 0))))
"""

APPLICATION = """
(module
  (import "lib" "memory" (memory 1))
  (import "lib" "alloc" (func $alloc (param i32) (result i32)))
  (import "lib" "upper" (func $upper (param i32 i32)))
  (import "lib" "heap" (global $heap (mut i32)))
  (import "lib" "callbacks" (table 1 funcref))
  (global $notified (export "notified") (mut i32) (i32.const 0))
  (global $last_len (export "last_len") (mut i32) (i32.const 0))
  (data $prefix "hello, ")

  (func $on_upper (param $p i32) (param $len i32)
    (global.set $notified (i32.add (global.get $notified) (i32.const 1)))
    (global.set $last_len (local.get $len)))
  (elem declare func $on_upper)
  (func $register (table.set 0 (i32.const 0) (ref.func $on_upper)))
  (start $register)

  ;; greet(name, len) -> pointer to "HELLO, NAME" (length len + 7)
  (func (export "greet") (param $name i32) (param $len i32) (result i32)
    (local $out i32)
    (local.set $out (call $alloc (i32.add (local.get $len) (i32.const 7))))
    (memory.init $prefix (local.get $out) (i32.const 0) (i32.const 7))
    (memory.copy (i32.add (local.get $out) (i32.const 7)) (local.get $name) (local.get $len))
    (call $upper (local.get $out) (i32.add (local.get $len) (i32.const 7)))
    (local.get $out))

  (func (export "heap_used") (result i32) (i32.sub (global.get $heap) (i32.const 1024))))
"""


def _linked():
    linker = Linker()
    library = linker.instantiate(Module(wat(LIBRARY)))
    linker.define_instance("lib", library)
    application = linker.instantiate(Module(wat(APPLICATION)))
    return library, application


def _put_string(library, text: bytes) -> int:
    ptr = library.exports["alloc"](len(text))
    library.exports["memory"].write(ptr, text)
    return ptr


def test_strings_round_trip_through_the_library_allocator():
    library, application = _linked()
    memory = library.exports["memory"]
    for name in (b"world", b"asyncwasm", b"x"):
        ptr = _put_string(library, name)
        out = application.exports["greet"](ptr, len(name))
        assert out >= ptr + len(name), "the result must come from a fresh allocation"
        assert memory.read(out, len(name) + 7) == b"HELLO, " + name.upper()
    # the application called back from the library once per greet
    assert application.exports["notified"].value == 3
    assert application.exports["last_len"].value == 8


def test_both_modules_see_one_heap_global_and_one_memory():
    library, application = _linked()
    before = library.exports["heap"].value
    ptr = _put_string(library, b"abc")
    application.exports["greet"](ptr, 3)
    # alloc(3) then alloc(10), each rounded up to 8 bytes
    assert library.exports["heap"].value == before + 8 + 16
    assert application.exports["heap_used"]() == library.exports["heap"].value - 1024
    # the application's start function registered its callback in the library's table
    assert library.exports["callbacks"].get(0) is not None
