#!/usr/bin/env python
"""Score new rows with a trained checkpoint: its preprocessing, model and decision thresholds.

Usage:
    python predict.py --checkpoint checkpoints/run --csv_path new.csv --output predictions.csv

Writes the id column (when the model was trained with one), then ``<label>_prob`` and
``<label>_pred`` for every label. Missing feature columns are an error; missing values and
unseen categories are handled as in training.
"""


import os
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from argparse_dataclass import ArgumentParser

from imbalance.data import read_table
from imbalance.errors import UserError
from imbalance.inference import Predictor


@dataclass
class PredictConfig:
    checkpoint: str = field(metadata={"args": ["--checkpoint"], "help": "run folder (uses best.pt) or a .pt file"})
    csv_path: str = field(metadata={"args": ["--csv_path", "--csv-path"], "help": "CSV or .parquet file of rows to score"})
    output: str = field(default="predictions.csv", metadata={"args": ["--output"], "help": "where to write the predictions CSV"})
    device: str = field(default="cpu", metadata={"args": ["--device"], "choices": ["cpu", "cuda"], "help": "where to run the model"})


class _Parser(ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def run(argv: Optional[Sequence[str]] = None) -> Path:
    cfg = _Parser(PredictConfig, prog="predict.py", description=__doc__.split("\n\n")[0], allow_abbrev=False).parse_args(argv)
    predictor = Predictor.load(cfg.checkpoint, device=cfg.device)
    exact = [c for c in [predictor.id_col, *predictor.preprocessor.categorical_cols] if c]
    frame = read_table(cfg.csv_path, exact_cols=exact, progress=sys.stderr.isatty())
    predictions = predictor.predict_frame(frame, source=cfg.csv_path)
    out = Path(cfg.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    os.close(fd)
    try:
        predictions.to_csv(tmp, index=False)
        os.replace(tmp, out)
    finally:
        Path(tmp).unlink(missing_ok=True)
    positives = ", ".join(f"{n}: {int(predictions[f'{n}_pred'].sum())}" for n in predictor.label_names)
    print(f"wrote {len(predictions)} rows to {out} (positive predictions {positives})")
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:
        run(argv)
    except UserError as exc:
        print(f"predict.py: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
