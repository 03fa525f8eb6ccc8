"""Read an ONNX file's node list without the ``onnx`` package (for boards that lack it).

An ONNX model is a protobuf ``ModelProto``; its ``graph`` (field 7) holds ``node`` entries
(field 1), each with ``name`` (3), ``op_type`` (4) and ``domain`` (7). This module walks the
protobuf wire format directly — varints and length-delimited fields — and skips everything
else (weights are skipped by their length, never decoded), so what a runtime ran can be
reported on a board that has only numpy and the runtime. Where ``onnx`` is installed the
backends use it; the two readers agree (tested).
"""

from __future__ import annotations

import os


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def fields(buf: bytes):
    """(field number, wire type, value) of one protobuf message: ints for varints / fixed, bytes for
    length-delimited fields."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = _varint(buf, i)
        elif wt == 1:
            v, i = int.from_bytes(buf[i:i + 8], "little"), i + 8
        elif wt == 2:
            size, i = _varint(buf, i)
            v, i = buf[i:i + size], i + size
        elif wt == 5:
            v, i = int.from_bytes(buf[i:i + 4], "little"), i + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wt} in field {num}")
        yield num, wt, v


def nodes(path: str | os.PathLike) -> list[dict[str, str]]:
    """``[{"name", "op", "domain"}]`` for every node of the main graph, in stored order."""
    data = open(path, "rb").read()
    graph = next((v for num, wt, v in fields(data) if num == 7 and wt == 2), b"")
    out = []
    for num, wt, v in fields(graph):
        if num == 1 and wt == 2:
            node = {3: "", 4: "", 7: ""}
            for f, w, val in fields(v):
                if f in node and w == 2:
                    node[f] = val.decode("utf-8", "replace")
            out.append({"name": node[3], "op": node[4], "domain": node[7]})
    return out
