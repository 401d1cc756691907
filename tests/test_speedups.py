"""The optional C masking accelerator and the pure-Python path give identical results."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from typing import Callable, List

import pytest

from simplews import frames

try:
    from simplews import _speedups
except ImportError:  # pragma: no cover - depends on the build
    _speedups = None

needs_c = pytest.mark.skipif(
    _speedups is None,
    reason="simplews._speedups was not built: "
    + ("it is CPython's only (the pure path is PyPy's)" if sys.implementation.name != "cpython" else "no C compiler at install time?"),
)

PATHS: List[object] = [
    pytest.param(frames._py_apply_mask, id="python"),
    pytest.param(getattr(_speedups, "apply_mask", None), id="C", marks=needs_c),
]
LENGTHS = [*range(71), 125, 4096, 65535, 65536, 65537, (1 << 20) + 3]


def reference_mask(data: bytes, key: bytes) -> bytes:
    """Byte-by-byte XOR straight from RFC 6455 section 5.3."""
    return bytes(b ^ key[i % 4] for i, b in enumerate(data))


@pytest.fixture(scope="module")
def rng() -> random.Random:
    return random.Random(6455)


def random_bytes(rng: random.Random, n: int) -> bytes:
    return rng.getrandbits(8 * n).to_bytes(n, "little") if n else b""


@pytest.mark.parametrize("mask", PATHS)
def test_small_lengths_match_the_reference(mask: Callable[[object, bytes], bytes], rng: random.Random) -> None:
    for n in range(71):
        for _ in range(4):
            data = random_bytes(rng, n)
            key = random_bytes(rng, 4)
            out = mask(data, key)
            assert type(out) is bytes
            assert out == reference_mask(data, key), (n, key)


@needs_c
@pytest.mark.parametrize("n", LENGTHS)
def test_both_paths_identical(n: int, rng: random.Random) -> None:
    data = random_bytes(rng, n)
    key = random_bytes(rng, 4)
    py = frames._py_apply_mask(data, key)
    c = _speedups.apply_mask(data, key)
    assert py == c
    assert type(py) is type(c) is bytes
    assert c[:300] == reference_mask(data[:300], key)
    assert _speedups.apply_mask(c, key) == data


@needs_c
def test_both_paths_identical_on_unaligned_views(rng: random.Random) -> None:
    base = bytearray(random_bytes(rng, 4096 + 64))
    view = memoryview(base)
    for start in range(9):
        for n in (*range(40), 1000, 4096):
            key = random_bytes(rng, 4)
            chunk = view[start : start + n]
            assert frames._py_apply_mask(chunk, key) == _speedups.apply_mask(chunk, key) == reference_mask(bytes(chunk), key)


@pytest.mark.parametrize("mask", PATHS)
@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
@pytest.mark.parametrize("n", [0, 5, 64, 65, 65536])
def test_any_bytes_like_input(mask: Callable[[object, bytes], bytes], kind: type, n: int, rng: random.Random) -> None:
    data = random_bytes(rng, n)
    key = random_bytes(rng, 4)
    source = kind(bytearray(data)) if kind is memoryview else kind(data)
    out = mask(source, key)
    assert type(out) is bytes
    assert out == reference_mask(data, key)
    assert bytes(source) == data  # the input is never modified


@pytest.mark.parametrize("mask", PATHS)
@pytest.mark.parametrize("key", [b"", b"abc", b"abcde", bytearray(b"12345678")])
def test_wrong_key_length_is_a_value_error(mask: Callable[[object, bytes], bytes], key: bytes) -> None:
    with pytest.raises(ValueError, match="4 bytes"):
        mask(b"payload", key)
    with pytest.raises(ValueError, match="4 bytes"):
        mask(b"", key)


@needs_c
def test_c_path_rejects_non_buffers() -> None:
    with pytest.raises(TypeError):
        _speedups.apply_mask("text", b"abcd")
    with pytest.raises(TypeError):
        _speedups.apply_mask(b"data", 1234)
    with pytest.raises(TypeError):
        _speedups.apply_mask(b"data")


@needs_c
def test_frames_uses_the_extension_by_default() -> None:
    if os.environ.get("SIMPLEWS_NO_SPEEDUPS", "") not in ("", "0"):
        pytest.skip("SIMPLEWS_NO_SPEEDUPS is set for this run")
    assert frames.SPEEDUPS
    assert frames.apply_mask is _speedups.apply_mask


def test_environment_variable_forces_the_pure_python_path() -> None:
    code = "from simplews import frames; print(frames.SPEEDUPS, frames.apply_mask.__module__)"
    env = dict(os.environ, SIMPLEWS_NO_SPEEDUPS="1")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.split() == ["False", "simplews.frames"]
