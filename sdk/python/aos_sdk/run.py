"""``python -m aos_sdk.run SERVICE.py``: how the kernel runs a Python service."""

from __future__ import annotations

import runpy
import sys

from aos_sdk import service


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m aos_sdk.run SERVICE.py", file=sys.stderr)
        return 2
    runpy.run_path(argv[1], run_name="aos_service")
    if not service._registered:
        print(
            f"aos service: {argv[1]} defines no service (decorate one with @define_service)",
            file=sys.stderr,
        )
        return 2
    return service.run(service._registered[-1])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
