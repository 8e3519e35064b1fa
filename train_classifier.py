#!/usr/bin/env python
"""Train a neural classifier on a rare binary outcome or several rare labels at once.

Usage:
    python train_classifier.py --preset aggressive                      # built-in demo cohort
    python train_classifier.py --preset aggressive --csv_path cohort.csv --target_cols stroke \\
        --id_col id --output_dir checkpoints/stroke
    python train_classifier.py --help                                   # every flag, by lever

The run folder (--output_dir) receives run.json (the run's status and the list of its files,
first), config.json and analysis.json (the imbalance analysis, before training), best.pt, last.pt,
metrics.json, report.md and model_card.md (the final per-label report with baselines, intervals,
calibration and subgroups), plots/, test_predictions.csv and TensorBoard logs. It must be new or
empty, or hold an earlier run of this tool (replaced only with --overwrite). Score new rows with
predict.py or serve.py; continue an interrupted run with --resume RUN_DIR. The run itself lives
in imbalance/runner.py.
"""

import sys

from imbalance.runner import main, run

__all__ = ["main", "run"]

if __name__ == "__main__":
    sys.exit(main())
