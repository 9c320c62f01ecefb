"""Detector state to bytes and back, without pickle (which runs code on load).

A state is a tree of dicts whose leaves are numpy arrays, numbers, strings, booleans or None. It is
stored as one `.npz` archive: every array under its path in the tree, plus a JSON manifest of the
tree with the scalars in it. Loading uses `allow_pickle=False`, so a tampered checkpoint can fail to
load but cannot execute anything.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

__all__ = ["CheckpointError", "pack", "unpack"]

_FORMAT = "aiops-state-1"


class CheckpointError(ValueError):
    """Bytes that are not a checkpoint this version can read."""


def pack(state: dict[str, Any]) -> bytes:
    arrays: dict[str, np.ndarray] = {}

    def walk(node: Any, path: str) -> Any:
        if isinstance(node, dict):
            return {"dict": {str(k): walk(v, f"{path}/{k}") for k, v in node.items()}}
        if isinstance(node, np.ndarray):
            arrays[path] = node
            return {"array": path}
        if isinstance(node, (np.integer, np.floating, np.bool_)):
            return {"scalar": node.item()}
        if node is None or isinstance(node, (bool, int, float, str)):
            return {"scalar": node}
        if isinstance(node, (list, tuple)):
            return {"list": [walk(v, f"{path}/{i}") for i, v in enumerate(node)]}
        raise TypeError(f"cannot checkpoint {type(node).__name__} at {path or '/'}")

    manifest = {"format": _FORMAT, "tree": walk(state, "")}
    buffer = io.BytesIO()
    np.savez(buffer, __manifest__=np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8), **arrays)
    return buffer.getvalue()


def unpack(data: bytes) -> dict[str, Any]:
    try:
        archive = np.load(io.BytesIO(data), allow_pickle=False)
        manifest = json.loads(archive["__manifest__"].tobytes())
    except (ValueError, KeyError, OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"not a readable checkpoint: {exc}") from None
    if manifest.get("format") != _FORMAT:
        raise CheckpointError(f"unsupported checkpoint format {manifest.get('format')!r}")

    def build(node: dict) -> Any:
        if "dict" in node:
            return {k: build(v) for k, v in node["dict"].items()}
        if "array" in node:
            return archive[node["array"]]
        if "list" in node:
            return [build(v) for v in node["list"]]
        return node["scalar"]

    return build(manifest["tree"])
