"""More minority rows for the training split: resampling, generated rows, and their quality gate.

Everything here touches the training split only. Preprocessing is fitted on the real training
rows and they are encoded once (:class:`~imbalance.preprocessing.EncodedRows`); synthetic rows are
then made from those rows (resampling works on their compact matrix), or read or generated and
encoded with the same preprocessor, checked against the real training minority rows, and
appended. Validation and test rows stay real, so
every metric is computed on real rows only.

How many generated rows are mixed in, per label l with n_pos(l) training positives and
n_neg(l) negatives (``--augment_strategy``):

    conservative  n_pos(l)              (doubles the positives: "2x minority class")
    moderate      3 x n_pos(l)          (quadruples them: "4x minority class")
    full          n_neg(l) - n_pos(l)   (up to a 50/50 balance: "full balance")

as the stroke augmentation guide defines them (249 stroke cases: generate 249, 747, 4,612).
``--generated_ratio R`` sets R x n_pos(l) instead.

Columns that form a one-hot group (:mod:`imbalance.onehot`) are one categorical column for every
resampler and generator, so every synthetic row has exactly one level of each group set.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np
import pandas as pd

from .data import parse_outcome, read_table
from .errors import UserError
from .onehot import OneHotGroup, collapse_frame, collapse_matrix, expand_frame, expand_matrix, find_onehot_groups
from .preprocessing import EncodedRows, TabularPreprocessor
from .registry import Registry
from .resampling import resample

__all__ = ["AUGMENT_STRATEGIES", "AugmentedTrain", "augment_training_split", "generated_counts", "read_generated_rows"]

logger = logging.getLogger(__name__)

_MIN_QUALITY_ROWS = 5  # fewer rows on either side make a per-label comparison meaningless

AUGMENT_STRATEGIES: Registry[Any] = Registry("augment strategy")
AUGMENT_STRATEGIES.register("conservative")(lambda n_pos, n_neg: n_pos)
AUGMENT_STRATEGIES.register("moderate")(lambda n_pos, n_neg: 3 * n_pos)
AUGMENT_STRATEGIES.register("full")(lambda n_pos, n_neg: max(0, n_neg - n_pos))


@dataclass
class AugmentedTrain:
    rows: EncodedRows  # the real training rows first, then the added ones
    y: np.ndarray  # (n', L) uint8
    synthetic: np.ndarray  # (n',) bool
    provenance: dict[str, Any] = field(default_factory=dict)
    quality: Optional[dict[str, Any]] = None
    methods: Optional[np.ndarray] = None  # (n',) object: the method that made each row ("" for real rows)


def generated_counts(y: np.ndarray, *, strategy: str, ratio: Optional[float]) -> np.ndarray:
    """Rows to add per label (see the module docstring)."""
    n_pos = y.sum(axis=0).astype(np.int64)
    n_neg = len(y) - n_pos
    if ratio is not None:
        return np.ceil(ratio * n_pos).astype(np.int64)
    rule = AUGMENT_STRATEGIES.get(strategy)
    return np.array([rule(int(p), int(q)) for p, q in zip(n_pos, n_neg)], dtype=np.int64)


def read_generated_rows(path: str, *, feature_cols: Sequence[str], label_names: Sequence[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """An external file of generated minority rows: its features (training column order) and labels."""
    frame = read_table(path)
    missing_labels = [c for c in label_names if c not in frame.columns]
    if missing_labels:
        raise UserError(f"--generated_csv {path}: outcome column(s) {', '.join(missing_labels)} missing; the generated rows need them")
    missing = [c for c in feature_cols if c not in frame.columns]
    if missing:
        raise UserError(f"--generated_csv {path}: missing feature column(s) {', '.join(missing)}; generate every training feature")
    extra = [c for c in frame.columns if c not in feature_cols and c not in label_names]
    if extra:
        logger.warning("--generated_csv %s: ignoring %d extra column(s): %s", path, len(extra), ", ".join(extra[:10]))
    labels = np.column_stack([parse_outcome(frame[c], c, f"--generated_csv {path}") for c in label_names])
    if np.isnan(labels).any():
        raise UserError(f"--generated_csv {path}: {int(np.isnan(labels).any(axis=1).sum())} row(s) have a missing outcome; every generated row needs one")
    labels = labels.astype(np.uint8)
    if labels.sum() == 0:
        raise UserError(f"--generated_csv {path}: no minority (positive) rows for {', '.join(label_names)}; nothing to mix in")
    return frame[list(feature_cols)].reset_index(drop=True), labels


def _pick_rows(pool_y: np.ndarray, counts: np.ndarray, rng: np.random.Generator, names: Sequence[str]) -> np.ndarray:
    """Rows of a generated pool to mix in: for each label, ``counts[l]`` rows positive for it."""
    chosen: list[np.ndarray] = []
    for j, want in enumerate(counts):
        rows = np.flatnonzero(pool_y[:, j] == 1)
        if want <= 0:
            continue
        if len(rows) < want:
            logger.warning("generated rows: %d positive for '%s', fewer than the %d asked for; using all of them", len(rows), names[j], want)
        chosen.append(rng.permutation(rows)[: min(want, len(rows))])
    return np.unique(np.concatenate(chosen)) if chosen else np.array([], dtype=np.int64)


def _generate_rows(
    generator: str, train_frame: pd.DataFrame, y: np.ndarray, kinds: dict[str, str], counts: np.ndarray,
    names: Sequence[str], seed: int, groups: Sequence[OneHotGroup] = (), epochs: Optional[int] = None,
) -> tuple[pd.DataFrame, np.ndarray]:
    """Per label, fit the generator on its training positives (other labels ride along as yes/no
    columns, so co-occurrence is generated too; one-hot groups as one categorical column each)
    and sample ``counts[l]`` rows."""
    from .generators import build_generator

    order = list(train_frame.columns)
    train_frame, kinds = collapse_frame(train_frame, kinds, groups)
    frames, labels = [], []
    label_cols = [f"__label__{n}" for n in names]
    for j, want in enumerate(counts):
        if want <= 0:
            continue
        pos = y[:, j] == 1
        minority = train_frame.loc[pos].reset_index(drop=True).copy()
        for k, col in enumerate(label_cols):
            minority[col] = y[pos, k].astype(np.int64)
        gen = build_generator(generator, seed=seed + j, epochs=epochs).fit(minority, {**kinds, **{c: "binary" for c in label_cols}})
        made = gen.sample(int(want))
        made_labels = np.column_stack([pd.to_numeric(made[c], errors="coerce").fillna(0).to_numpy() for c in label_cols]).astype(np.uint8)
        made_labels[:, j] = 1  # generated for this label
        frames.append(expand_frame(made.drop(columns=label_cols), groups, order))
        labels.append(made_labels)
    if not frames:
        return expand_frame(train_frame.iloc[:0], groups, order), np.zeros((0, len(names)), dtype=np.uint8)
    return pd.concat(frames, ignore_index=True), np.vstack(labels)


def augment_training_split(
    pre: TabularPreprocessor,
    real_rows: EncodedRows,
    train_frame: pd.DataFrame,
    y: np.ndarray,
    *,
    label_names: Sequence[str],
    resample_method: str = "none",
    resample_ratio: float = 1.0,
    k_neighbors: int = 5,
    generated_csv: Optional[str] = None,
    generator: str = "none",
    augment_strategy: str = "conservative",
    generated_ratio: Optional[float] = None,
    seed: int = 0,
    onehot_groups: Sequence[str] = (),
    generator_epochs: Optional[int] = None,
    measure_quality: bool = True,
) -> AugmentedTrain:
    """The training split with the asked-for synthetic rows appended, with provenance and a
    quality report of the synthetic rows against the real training minority rows.

    ``real_rows`` are the training rows as the run encoded them; ``train_frame`` the same rows in
    their original columns, which the generators fit on. ``onehot_groups`` are declared
    one-hot prefixes (``--onehot_groups``); others are found in the training rows. A search's
    trials pass ``measure_quality=False``: no quality report, only the duplicates removed.
    """
    real = real_rows.compact()
    columns = pre.compact_columns
    categorical = np.array([kind == "categorical" for _, kind in columns])
    names = [name for name, _ in columns]
    x, out_y, synthetic = real, np.asarray(y, dtype=np.uint8), np.zeros(len(real), dtype=bool)
    provenance: dict[str, Any] = {"real_rows": len(real), "steps": []}
    binary = [c for c in pre.input_columns if pre.kinds[c] == "binary"]
    groups = find_onehot_groups(train_frame, binary, onehot_groups)
    if groups:
        provenance["onehot_groups"] = {g.prefix: list(g.columns) for g in groups}
        logger.info("one-hot groups, each made as one categorical column: %s",
                    "; ".join(f"{g.prefix} ({len(g.columns)} columns)" for g in groups))
    methods = np.full(len(real), "", dtype=object)

    if resample_method != "none":
        grouped = {c for g in groups for c in g.columns}
        collapsed, collapsed_categorical = collapse_matrix(real, names, categorical, groups)
        result = resample(collapsed, out_y, method=resample_method, ratio=resample_ratio, k_neighbors=k_neighbors,
                          categorical=collapsed_categorical, column_names=[n for n in names if n not in grouped] + [g.key for g in groups],
                          label_names=label_names, seed=seed)
        x, out_y, synthetic = expand_matrix(result.x, names, groups), result.y, result.synthetic
        methods = np.where(synthetic, resample_method, "").astype(object)
        provenance["steps"].append(result.provenance)
        logger.info("resampled the training split with %s in %.2fs: %s", resample_method, result.provenance["seconds"], result.provenance["rows"])

    if generated_csv is not None or generator != "none":
        started = time.perf_counter()
        counts = generated_counts(y, strategy=augment_strategy, ratio=generated_ratio)
        rng = np.random.default_rng(seed)
        if generated_csv is not None:
            pool, pool_y = read_generated_rows(generated_csv, feature_cols=pre.input_columns, label_names=label_names)
            picked = _pick_rows(pool_y, counts, rng, label_names)
            gen_frame, gen_y, source = pool.iloc[picked], pool_y[picked], f"--generated_csv {generated_csv}"
        else:
            gen_frame, gen_y = _generate_rows(generator, train_frame[pre.input_columns], out_y[: len(real)], dict(pre.kinds), counts,
                                              label_names, seed, groups, generator_epochs)
            source = f"generator {generator}"
        gen_x = pre.transform(gen_frame, source=source).compact()
        x, out_y = np.vstack([x, gen_x]), np.vstack([out_y, gen_y]).astype(np.uint8)
        synthetic = np.concatenate([synthetic, np.ones(len(gen_x), dtype=bool)])
        methods = np.concatenate([methods, np.full(len(gen_x), generator if generated_csv is None else "generated_csv", dtype=object)])
        step = {"method": source, "asked_per_label": dict(zip(label_names, counts.tolist())), "rows": {"synthetic": len(gen_x)},
                "per_label": {n: {"synthetic_positive": int(gen_y[:, j].sum())} for j, n in enumerate(label_names)},
                "seconds": round(time.perf_counter() - started, 3)}
        provenance["steps"].append(step)
        logger.info("mixed in %d rows from %s (%s)", len(gen_x), source, step["per_label"])

    quality = None
    if synthetic.any():
        from .synthetic_quality import duplicate_mask, quality_report

        kinds = [k for _, k in columns]

        method = "+".join(m for m in (resample_method if resample_method != "none" else "",
                                      "generated_csv" if generated_csv is not None else (generator if generator != "none" else "")) if m)

        def compare(real_rows: np.ndarray, synthetic_rows: np.ndarray) -> dict[str, Any]:
            return quality_report(real_rows, synthetic_rows, kinds=kinds, names=names, real_frame=pre.decode(real_rows),
                                  synthetic_frame=pre.decode(synthetic_rows), seed=seed, frame_kinds=dict(pre.kinds),
                                  method=method, k_neighbors=k_neighbors if resample_method != "none" else None)

        # Each label's synthetic positives against its own real positives: pooling labels would
        # compare rows made for a rare label with the positives of every other label.
        real_y = out_y[: len(real)]
        per_label = {}
        for j, name in enumerate(label_names):
            made = synthetic & (out_y[:, j] == 1)
            if measure_quality and made.sum() >= _MIN_QUALITY_ROWS and real_y[:, j].sum() >= _MIN_QUALITY_ROWS:
                per_label[name] = compare(real[real_y[:, j] == 1], x[made])
        if not measure_quality:
            pass
        elif per_label:
            # The label with the most synthetic rows leads the report; the gate checks every label.
            lead = max(per_label, key=lambda n: per_label[n]["n_synthetic"])
            quality = {**per_label[lead], "label": lead}
            if len(per_label) > 1:
                quality["per_label"] = per_label
        else:
            quality = compare(real[real_y.any(axis=1)], x[synthetic])
        # Exact copies of real rows add nothing new and would leak memorisation: drop them.
        dupes = np.zeros(len(x), dtype=bool)
        dupes[np.flatnonzero(synthetic)] = duplicate_mask(real, x[synthetic])
        if dupes.any():
            logger.warning("removed %d synthetic row(s) identical to real training rows", int(dupes.sum()))
            x, out_y, synthetic, methods = x[~dupes], out_y[~dupes], synthetic[~dupes], methods[~dupes]
        provenance["duplicates_removed"] = int(dupes.sum())

    provenance["final"] = {
        "rows": {"real": int((~synthetic).sum()), "synthetic": int(synthetic.sum())},
        "per_label": {n: {"real_positive": int(out_y[~synthetic, j].sum()), "synthetic_positive": int(out_y[synthetic, j].sum())}
                      for j, n in enumerate(label_names)},
    }
    # float32 -> float64 -> float32 is exact, so the real rows come back unchanged.
    return AugmentedTrain(rows=pre.from_compact(x), y=out_y, synthetic=synthetic, provenance=provenance, quality=quality,
                          methods=methods)
