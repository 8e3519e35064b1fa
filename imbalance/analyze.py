"""Imbalance analysis of a cohort, before any training: how rare each label is, how many
positives each split holds, how the labels co-occur, what the features look like, and what to
train with, with the numbers behind each recommendation.

Printed before every training run and written to ``analysis.json`` in its folder; alone:

    python -m imbalance.analyze --csv_path cohort.csv --target_cols stroke --id_col id

(every data flag of train_classifier.py works: --preset, --val_fraction, --categorical_cols, ...).

Severity of a label combines the imbalance ratio (negatives per positive) and the number of
positive rows in the training split, and takes the worse of the two:

=========  =====================  ==========================
grade      ratio (neg : pos)      training positives
=========  =====================  ==========================
mild       below 4                500 or more
moderate   4 to 19                100 to 499
severe     19 to 99               30 to 99
extreme    99 or more             fewer than 30
=========  =====================  ==========================
"""

from __future__ import annotations

import logging
import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from .errors import exit_code

__all__ = ["LabelAnalysis", "Analysis", "analyze", "severity", "format_analysis", "main"]

log = logging.getLogger(__name__)

GRADES = ("mild", "moderate", "severe", "extreme")
_RATIO_EDGES = (4.0, 19.0, 99.0)  # ratio at or above edge i -> grade i + 1
_POSITIVE_EDGES = (500, 100, 30)  # training positives below edge i -> grade i + 1
SMALL_TABLE_ROWS = 20_000  # below this, piecewise-linear embeddings cost little and helped most (README)
FEW_POSITIVES = 50  # training positives below which more minority rows are worth trying


def severity(ratio: float, train_positives: int) -> str:
    by_ratio = sum(ratio >= edge for edge in _RATIO_EDGES)
    by_count = sum(train_positives < edge for edge in _POSITIVE_EDGES)
    return GRADES[max(by_ratio, by_count)]


@dataclass
class LabelAnalysis:
    name: str
    prevalence: float
    positives: int
    negatives: int
    ratio: float  # negatives per positive
    positives_per_split: dict[str, int]
    severity: str


@dataclass
class Analysis:
    source: str
    rows: int
    rows_per_split: dict[str, int]
    task: str  # binary | multi-label
    labels: list[LabelAnalysis]
    co_occurrence: Optional[dict[str, Any]]  # multi-label: counts of rows positive for both labels, and P(b | a)
    features: dict[str, Any]  # kinds, missingness
    recommendation: dict[str, dict[str, str]] = field(default_factory=dict)  # lever -> {"choice", "because"}

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def analyze(*, source: str, labels: np.ndarray, label_names: Sequence[str], splits: dict[str, np.ndarray],
            preprocessor: Any, features: Any, batch_size: int) -> Analysis:
    """The analysis of a prepared table: labels (n, L) 0/1, the split positions, the fitted
    preprocessor (feature kinds) and the raw feature frame (missingness)."""
    labels = np.asarray(labels)
    n = len(labels)
    train = labels[splits["train"]]
    per_label = []
    for j, name in enumerate(label_names):
        pos = int(labels[:, j].sum())
        neg = n - pos
        ratio = neg / pos if pos else float("inf")
        per_split = {part: int(labels[rows, j].sum()) for part, rows in splits.items()}
        per_label.append(LabelAnalysis(name=name, prevalence=pos / n, positives=pos, negatives=neg, ratio=ratio,
                                       positives_per_split=per_split, severity=severity(ratio, int(train[:, j].sum()))))
    co = None
    if len(label_names) > 1:
        both = (labels.T.astype(np.int64) @ labels.astype(np.int64))
        pairs = {}
        for a in range(len(label_names)):
            for b in range(a + 1, len(label_names)):
                pairs[f"{label_names[a]} & {label_names[b]}"] = {
                    "both": int(both[a, b]),
                    f"P({label_names[b]} | {label_names[a]})": float(both[a, b] / both[a, a]) if both[a, a] else float("nan"),
                    f"P({label_names[a]} | {label_names[b]})": float(both[a, b] / both[b, b]) if both[b, b] else float("nan"),
                }
        per_row = labels.sum(axis=1)
        co = {"pairs": pairs, "rows_by_number_of_positive_labels": {str(k): int((per_row == k).sum()) for k in range(int(per_row.max()) + 1)}}
    missing = {str(c): float(features[c].isna().mean()) for c in features.columns}
    feature_info = {
        "columns": len(features.columns),
        "numeric": len(preprocessor.numeric_names),
        "binary": len([s for s in preprocessor.columns_ if s["kind"] == "binary"]),
        "categorical": len(preprocessor.categorical_names),
        "category_levels": dict(zip(preprocessor.categorical_names, preprocessor.cardinalities)),
        "missing_share": {c: round(v, 4) for c, v in sorted(missing.items(), key=lambda kv: -kv[1]) if v > 0},
        "left_out": [c for c in map(str, features.columns) if c not in preprocessor.input_columns],
    }
    result = Analysis(source=source, rows=n, rows_per_split={p: int(len(r)) for p, r in splits.items()},
                      task="multi-label" if len(label_names) > 1 else "binary", labels=per_label, co_occurrence=co,
                      features=feature_info)
    result.recommendation = recommend(result, batch_size=batch_size)
    return result


def recommend(analysis: Analysis, *, batch_size: int) -> dict[str, dict[str, str]]:
    """What to train with, each choice with the numbers that led to it. The rules follow what
    the quality benchmark measured (README, "Measured quality")."""
    worst = max(analysis.labels, key=lambda a: GRADES.index(a.severity) * 1e9 + a.ratio)
    train_pos = min(a.positives_per_split["train"] for a in analysis.labels)
    rarest = min(analysis.labels, key=lambda a: a.prevalence)
    per_batch = rarest.prevalence * batch_size
    out: dict[str, dict[str, str]] = {}
    facts = f"worst label {worst.name}: {worst.ratio:.0f}:1, {worst.positives_per_split['train']} training positives ({worst.severity})"
    if worst.severity == "mild":
        out["preset"] = {"choice": "none (plain BCE) or balanced", "because": f"{facts}: little to correct"}
    else:
        out["preset"] = {"choice": "balanced", "because": f"{facts}; on the benchmark tables one correction (class weights) "
                         "ranked test rows better than the aggressive presets' several"}
    if per_batch < 1.0:
        out["sampler"] = {"choice": "--use_weighted_sampling --weight_method balanced, with --class_weight_method none",
                          "because": f"{rarest.name} at {rarest.prevalence:.2%} gives {per_batch:.2f} positive rows per batch of "
                                     f"{batch_size}: most batches hold none; sample instead of weighting (one correction)"}
    else:
        out["sampler"] = {"choice": "none (uniform shuffling)",
                          "because": f"{rarest.name} at {rarest.prevalence:.2%} still gives {per_batch:.1f} positive rows per batch "
                                     f"of {batch_size}; class weights correct the loss"}
    out["loss"] = {"choice": "weighted_bce with --class_weight_method balanced" if per_batch >= 1.0 else "bce",
                   "because": "one correction: class weights when batches hold positives, else weighted sampling"}
    if train_pos < FEW_POSITIVES:
        method = "mlsmote" if analysis.task == "multi-label" else (
            "smotenc" if analysis.features["categorical"] or analysis.features["binary"] else "smote")
        out["resampling"] = {"choice": f"try --resample {method} --resample_ratio 0.1 with --compare",
                             "because": f"{train_pos} training positives for the rarest label (< {FEW_POSITIVES}): more minority rows may help; "
                                        "--compare measures it on the same split"}
    else:
        out["resampling"] = {"choice": "none", "because": f"every label has {train_pos} or more training positives"}
    rows = analysis.rows_per_split["train"]
    numeric = analysis.features["numeric"]
    if rows < SMALL_TABLE_ROWS and numeric:
        out["model"] = {"choice": "--model mlp --num_embeddings piecewise_linear (then resnet --ensemble 3)",
                        "because": f"{rows} training rows and {numeric} numeric columns: embeddings cost little at this size "
                                   "and were the MLP's best form on the small benchmark tables"}
    else:
        out["model"] = {"choice": "--model mlp",
                        "because": f"{rows} training rows: the plain MLP is the fastest per row; try resnet once it works"}
    return out


def _fmt_ratio(ratio: float) -> str:
    return "inf" if not np.isfinite(ratio) else f"{ratio:.1f}:1"


def format_analysis(analysis: Analysis) -> str:
    """A short text for the console: a line per label, the features, the recommendation."""
    lines = [f"imbalance analysis of {analysis.source}: {analysis.rows} rows ({analysis.task}), "
             + " / ".join(f"{p} {n}" for p, n in analysis.rows_per_split.items())]
    width = max(len(a.name) for a in analysis.labels)
    for a in analysis.labels:
        split = " / ".join(str(v) for v in a.positives_per_split.values())
        lines.append(f"  {a.name:<{width}}  prevalence {a.prevalence:7.2%}  ratio {_fmt_ratio(a.ratio):>8}  "
                     f"positives {a.positives} (train/val/test {split})  {a.severity}")
    if analysis.co_occurrence:
        top = sorted(analysis.co_occurrence["pairs"].items(), key=lambda kv: -kv[1]["both"])[:3]
        lines.append("  most co-occurring labels: " + ", ".join(f"{k} ({v['both']} rows)" for k, v in top))
    f = analysis.features
    missing = ", ".join(f"{c} {v:.0%}" for c, v in list(f["missing_share"].items())[:3])
    lines.append(f"  features: {f['numeric']} numeric, {f['binary']} binary, {f['categorical']} categorical"
                 + (f"; most missing: {missing}" if missing else "; none missing"))
    for lever, rec in analysis.recommendation.items():
        lines.append(f"  recommended {lever}: {rec['choice']} ({rec['because']})")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    from .config import parse_config
    from .pipeline import analyze_data

    def run() -> None:
        cfg, _ = parse_config(argv, prog="python -m imbalance.analyze")
        logging.basicConfig(level=logging.WARNING, format="%(message)s", force=True)
        print(format_analysis(analyze_data(cfg)))

    return exit_code("python -m imbalance.analyze", run)


if __name__ == "__main__":
    sys.exit(main())
