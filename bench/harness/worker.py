"""torchrun entry point: ``python -m bench.harness.worker --request '<Request JSON>'`` (one per process)."""

from __future__ import annotations

import argparse
import sys

from vtondata.errors import VtonDataError


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--request", required=True, help="bench.harness.run.Request as JSON")
    args = ap.parse_args(argv)
    import torch.distributed as dist

    from .dist import init
    from .run import Request, run_bench

    req = Request.from_json(args.request)
    try:
        ctx = init(req.device)
        run_bench(req, ctx, log=print if ctx.main else (lambda s: None))
    except VtonDataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    finally:
        if dist.is_available() and dist.is_initialized():
            dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
