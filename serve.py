#!/usr/bin/env python
"""Serve a trained checkpoint over HTTP.

Usage:
    python serve.py --checkpoint checkpoints/stroke --host 127.0.0.1 --port 8000 [--workers N]

Endpoints: GET /health, GET /model/info, POST /predict (one record), POST /predict/batch (JSON
records, or a CSV body with Content-Type text/csv); /docs shows the schema. The answers are those
of predict.py for the same rows. A checkpoint that does not load stops the server at start, in
one line.
"""

import argparse
import os
import sys

from imbalance.checkpoint import resolve_checkpoint_path
from imbalance.errors import UserError
from imbalance.inference import Predictor
from imbalance.serving import CHECKPOINT_ENV, MAX_BATCH_ROWS, MAX_ROWS_ENV, create_app


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="serve.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True, help="run folder (uses best.pt) or a .pt file")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1, help="server processes, each with the model loaded")
    parser.add_argument("--max_batch_rows", "--max-batch-rows", type=int, default=MAX_BATCH_ROWS,
                        help="most rows one /predict/batch request may hold")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args(argv)
    try:
        if args.workers < 1 or args.max_batch_rows < 1 or not 0 < args.port < 65536:
            raise UserError("--workers and --max_batch_rows must be >= 1 and --port in 1-65535")
        path = resolve_checkpoint_path(args.checkpoint)
        predictor = Predictor.load(path, device=args.device)  # weights_only=True; a bad checkpoint stops here
    except UserError as exc:
        print(f"serve.py: error: {exc}", file=sys.stderr)
        return 2
    import uvicorn

    if args.workers == 1:
        uvicorn.run(create_app(predictor, checkpoint_path=path, max_batch_rows=args.max_batch_rows), host=args.host, port=args.port)
    else:  # each worker process loads the (already checked) checkpoint itself
        os.environ[CHECKPOINT_ENV], os.environ[MAX_ROWS_ENV] = str(path), str(args.max_batch_rows)
        uvicorn.run("imbalance.serving:app_from_environment", factory=True, host=args.host, port=args.port, workers=args.workers)
    return 0


if __name__ == "__main__":
    sys.exit(main())
