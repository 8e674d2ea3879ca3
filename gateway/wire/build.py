"""Regenerate ``*_pb2.py`` and ``*_pb2.pyi`` from the ``.proto`` files in this folder."""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc  # type: ignore[import-untyped]

WIRE = Path(__file__).resolve().parent
ROOT = WIRE.parent.parent


def main() -> int:
    include = Path(protoc.__file__).parent / "_proto"
    for proto in sorted(WIRE.glob("*.proto")):
        args = [
            "protoc",
            f"-I{ROOT}",
            f"-I{include}",
            f"--python_out={ROOT}",
            f"--pyi_out={ROOT}",
            str(proto.relative_to(ROOT)),
        ]
        if protoc.main(args) != 0:
            print(f"protoc failed on {proto.name}", file=sys.stderr)
            return 1
        print(f"generated {proto.stem}_pb2.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
