#!/usr/bin/env python
"""Score new rows with a trained checkpoint: its preprocessing, model and decision thresholds.

Usage:
    python predict.py --checkpoint checkpoints/run --csv_path new.csv --output predictions.csv

Writes the id column (when the model was trained with one), then ``<label>_prob`` and
``<label>_pred`` for every label. Missing feature columns are an error; missing values and
unseen categories are handled as in training. An existing --output is replaced only with
--overwrite, and never when it is the input file or a checkpoint. The checkpoint of a run that
did not complete is refused unless --allow_incomplete.
"""


import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from argparse_dataclass import ArgumentParser

from imbalance.checkpoint import is_torch_archive, resolve_checkpoint_path
from imbalance.data import read_table
from imbalance.errors import UserError, exit_code
from imbalance.files import write_csv
from imbalance.inference import Predictor


@dataclass
class PredictConfig:
    checkpoint: str = field(metadata={"args": ["--checkpoint"], "help": "run folder (uses best.pt) or a .pt file"})
    csv_path: str = field(metadata={"args": ["--csv_path", "--csv-path"], "help": "CSV or .parquet file of rows to score"})
    output: str = field(default="predictions.csv", metadata={"args": ["--output"], "help": "where to write the predictions CSV"})
    device: str = field(default="cpu", metadata={"args": ["--device"], "choices": ["cpu", "cuda"], "help": "where to run the model"})
    overwrite: bool = field(default=False, metadata={"args": ["--overwrite"], "help": "replace an existing --output file"})
    allow_incomplete: bool = field(default=False, metadata={
        "args": ["--allow_incomplete", "--allow-incomplete"],
        "help": "score with the checkpoint of a run that did not complete (its thresholds are the default 0.5)"})


class _Parser(ArgumentParser):
    def error(self, message: str):  # one line, not argparse's usage block
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def check_output(output: str, *, inputs: Sequence[Path], overwrite: bool) -> Path:
    """Where the predictions may go: not an input, not a checkpoint, not a folder, and not an
    existing file unless --overwrite."""
    if not output.strip():
        raise UserError("--output is empty; name the predictions file, e.g. --output predictions.csv")
    out = Path(output)
    resolved = out.resolve()
    for path in inputs:
        if resolved == path.resolve():
            raise UserError(f"--output '{out}' is an input of this command ({path}); write the predictions to another file")
    if out.suffix == ".pt" or (out.is_file() and is_torch_archive(out)):
        raise UserError(f"--output '{out}' is a checkpoint (or another zip archive); write the predictions to a .csv file")
    if out.is_dir():
        raise UserError(f"--output '{out}' is a folder; name a file inside it, e.g. {out / 'predictions.csv'}")
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise UserError(f"--output '{out}' lies under '{parent}', which is a file; choose another path")
    if out.exists() and not overwrite:
        raise UserError(f"--output '{out}' exists; pass --overwrite to replace it, or choose another file")
    return out


def run(argv: Optional[Sequence[str]] = None) -> Path:
    cfg = _Parser(PredictConfig, prog="predict.py", description=__doc__.split("\n\n")[0], allow_abbrev=False).parse_args(argv)
    checkpoint = resolve_checkpoint_path(cfg.checkpoint)
    out = check_output(cfg.output, inputs=[Path(cfg.csv_path), checkpoint], overwrite=cfg.overwrite)
    predictor = Predictor.load(checkpoint, device=cfg.device, allow_incomplete=cfg.allow_incomplete)
    exact = [c for c in [predictor.id_col, *predictor.preprocessor.categorical_cols] if c]
    frame = read_table(cfg.csv_path, exact_cols=exact, progress=sys.stderr.isatty())
    predictions = predictor.predict_frame(frame, source=cfg.csv_path)
    write_csv(out, predictions, index=False)
    positives = ", ".join(f"{n}: {int(predictions[f'{n}_pred'].sum())}" for n in predictor.label_names)
    print(f"wrote {len(predictions)} rows to {out} (positive predictions {positives})")
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    return exit_code("predict.py", lambda: run(argv))


if __name__ == "__main__":
    sys.exit(main())
