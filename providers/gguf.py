"""GGUF file headers, read without loading the model: architecture, sizes, quantization.

Read the way Ollama reads them, so figures agree with `/api/show`.
"""

from __future__ import annotations

import math
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

_SCALAR_FORMATS = dict(zip((0, 1, 2, 3, 4, 5, 6, 7, 10, 11, 12), "BbHhIif?Qqd", strict=True))
_STRING, _ARRAY, _FLOAT32 = 8, 9, 6


def _numbered(spec: str) -> dict[int, str]:
    """`"0:F32 1:F16"` as `{0: "F32", 1: "F16"}`."""
    return {int(number): name for number, name in (item.split(":") for item in spec.split())}


# llama.cpp's file types (general.file_type), as Ollama names them in quantization_level.
FILE_TYPES = _numbered(
    "0:F32 1:F16 2:Q4_0 3:Q4_1 7:Q8_0 8:Q5_0 9:Q5_1 10:Q2_K 11:Q3_K_S 12:Q3_K_M 13:Q3_K_L "
    "14:Q4_K_S 15:Q4_K_M 16:Q5_K_S 17:Q5_K_M 18:Q6_K 32:BF16"
)
# ggml's tensor types, for the `tensors` of /api/show.
_TENSOR_TYPES = _numbered(
    "0:F32 1:F16 2:Q4_0 3:Q4_1 6:Q5_0 7:Q5_1 8:Q8_0 9:Q8_1 10:Q2_K 11:Q3_K 12:Q4_K 13:Q5_K "
    "14:Q6_K 15:Q8_K 30:BF16"
)


@dataclass(frozen=True)
class GGUFInfo:
    """The key-value header of a GGUF file, its tensors, and their total element count."""

    kv: dict[str, Any]
    tensors: list[dict[str, Any]]
    parameter_count: int


def read_gguf(path: Path, *, tensors: bool = True) -> GGUFInfo:
    """The header; with `tensors=False`, only the key-value metadata (faster).

    A file cut short (a download stopped midway) or garbled is a ValueError."""
    with path.open("rb") as f:
        header = _Header(f, path)
        if header.take(4) != b"GGUF":
            raise ValueError(f"{path} is not a GGUF file")
        (version,) = header.unpack("<I")
        if version < 2:
            raise ValueError(f"{path} is GGUF v{version}; only v2 and later are read")
        tensor_count, kv_count = header.unpack("<QQ")
        kv: dict[str, Any] = {}
        for _ in range(kv_count):
            key = header.string()
            (value_type,) = header.unpack("<I")
            kv[key] = header.value(value_type)
        found: list[dict[str, Any]] = []
        parameters = 0
        for _ in range(tensor_count if tensors else 0):
            name = header.string()
            (n_dims,) = header.unpack("<I")
            shape = list(header.unpack(f"<{n_dims}Q"))
            tensor_type, _offset = header.unpack("<IQ")
            found.append(
                {
                    "name": name,
                    "type": _TENSOR_TYPES.get(tensor_type, str(tensor_type)),
                    "shape": shape,
                }
            )
            parameters += math.prod(shape)
    return GGUFInfo(kv, found, parameters)


class _Header:
    """A GGUF file read from its start, each length checked against what is left of the file
    before it is read: a garbled length is then an error, not a read of exabytes."""

    def __init__(self, f: BinaryIO, path: Path) -> None:
        self._f = f
        self._path = path
        self._left = os.fstat(f.fileno()).st_size

    def take(self, size: int) -> bytes:
        if size > self._left:
            raise self._cut()
        self._left -= size
        return self._f.read(size)

    def _cut(self) -> ValueError:
        return ValueError(f"{self._path} ends inside its header: cut short, or damaged")

    def unpack(self, layout: str) -> tuple[Any, ...]:
        return struct.unpack(layout, self.take(struct.calcsize(layout)))

    def string(self) -> str:
        (length,) = self.unpack("<Q")
        return self.take(length).decode("utf-8", "replace")

    def value(self, value_type: int) -> Any:
        if value_type == _STRING:
            return self.string()
        if value_type == _ARRAY:
            item_type, count = self.unpack("<IQ")
            code = _SCALAR_FORMATS.get(item_type)
            if code is not None:
                if count * struct.calcsize(f"<{code}") > self._left:  # before "<{count}{code}"
                    raise self._cut()
                return list(self.unpack(f"<{count}{code}"))
            return [self.value(item_type) for _ in range(count)]
        code = _SCALAR_FORMATS.get(value_type)
        if code is None:
            raise ValueError(f"{self._path}: unknown GGUF value type {value_type}")
        (value,) = self.unpack(f"<{code}")
        return _shortest_float32(value) if value_type == _FLOAT32 else value


def _shortest_float32(value: float) -> float | int:
    """A float32 as Go prints it: the shortest decimal that reads back as the same float32."""
    exact = struct.pack("<f", value)
    for digits in range(1, 10):
        candidate = float(f"{value:.{digits}g}")
        if struct.pack("<f", candidate) == exact:
            return int(candidate) if candidate.is_integer() else candidate
    return value


def kv_cache_bytes_per_token(kv: dict[str, Any]) -> int | None:
    """Bytes of f16 KV cache one token of context takes (keys and values, every layer)."""
    arch = kv.get("general.architecture")
    try:
        layers = int(kv[f"{arch}.block_count"])
        heads = int(kv[f"{arch}.attention.head_count"])
        kv_heads = int(kv.get(f"{arch}.attention.head_count_kv", heads))
        head_dim = int(kv.get(f"{arch}.attention.key_length")
                       or int(kv[f"{arch}.embedding_length"]) // heads)  # fmt: skip
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return None
    return 2 * layers * kv_heads * head_dim * 2
