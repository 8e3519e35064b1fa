"""One-hot groups: found in the training rows or declared, and kept one-level-per-row by every
generator and resampler."""

import numpy as np
import pandas as pd
import pytest

from imbalance.augmentation import augment_training_split
from imbalance.errors import UserError
from imbalance.onehot import NONE_SET, collapse_frame, collapse_matrix, expand_frame, expand_matrix, find_onehot_groups
from imbalance.preprocessing import TabularPreprocessor

WORK = ["work_type_Private", "work_type_Govt_job", "work_type_Self-employed", "work_type_children"]
SMOKING = ["smoking_status_never smoked", "smoking_status_smokes", "smoking_status_Unknown"]


def guide_frame(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows like the stroke guide's one-hot encoded table, with a 10% outcome."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"age": rng.uniform(1, 90, n).round(), "avg_glucose_level": rng.lognormal(4.6, 0.3, n),
                          "hypertension": rng.integers(0, 2, n)})
    work = rng.choice(len(WORK), n, p=[0.5, 0.2, 0.2, 0.1])
    smoking = rng.choice(len(SMOKING), n)
    for j, column in enumerate(WORK):
        frame[column] = (work == j).astype(int)
    for j, column in enumerate(SMOKING):
        frame[column] = (smoking == j).astype(int)
    y = (rng.random(n) < 0.1 + 0.2 * (frame["age"].to_numpy() > 60)).astype(np.uint8)[:, None]
    return frame, y


def test_groups_are_found_by_prefix_and_exactly_one_set_per_row():
    frame, _ = guide_frame()
    frame["has_diabetes"] = 0  # a lone 0/1 column is not a group
    frame["ever_married_Yes"] = frame["hypertension"]
    frame["ever_married_No"] = 1 - frame["hypertension"]  # two columns sharing "ever_married": a group too
    frame["drug_a"] = frame["work_type_Private"]
    frame["drug_b"] = frame["work_type_Private"]  # "drug" prefix, but rows with both set: not a group
    groups = {g.prefix: g.columns for g in find_onehot_groups(frame, [c for c in frame if c not in ("age", "avg_glucose_level")])}
    assert groups == {"work_type": tuple(WORK), "smoking_status": tuple(SMOKING), "ever_married": ("ever_married_Yes", "ever_married_No")}


def test_declared_groups_allow_a_dropped_first_level_and_refuse_bad_prefixes():
    frame, _ = guide_frame()
    dropped = frame.drop(columns=[WORK[0]])  # drop-first encoding: Private is "none set"
    assert "work_type" not in {g.prefix for g in find_onehot_groups(dropped, list(dropped.columns[2:]))}
    (group,) = [g for g in find_onehot_groups(dropped, list(dropped.columns[2:]), ["work_type"]) if g.prefix == "work_type"]
    assert group.allows_none and group.levels[-1] == NONE_SET
    with pytest.raises(UserError, match="--onehot_groups smoker: 0 yes/no"):
        find_onehot_groups(frame, list(frame.columns[2:]), ["smoker"])
    both = frame.assign(**{WORK[1]: 1})
    with pytest.raises(UserError, match="more than one of"):
        find_onehot_groups(both, list(both.columns[2:]), ["work_type"])


def test_collapse_and_expand_are_inverse_on_frames_and_matrices():
    frame, _ = guide_frame()
    groups = find_onehot_groups(frame, list(frame.columns[2:]))
    kinds = {c: "numeric" if c in ("age", "avg_glucose_level") else "binary" for c in frame}
    collapsed, collapsed_kinds = collapse_frame(frame, kinds, groups)
    assert collapsed_kinds[groups[0].key] == "categorical" and not set(WORK) & set(collapsed.columns)
    assert set(collapsed[groups[0].key]) <= set(WORK)
    pd.testing.assert_frame_equal(expand_frame(collapsed, groups, list(frame.columns)), frame, check_dtype=False)
    x = frame.to_numpy(dtype=np.float64)
    names = list(frame.columns)
    small, categorical = collapse_matrix(x, names, np.zeros(len(names), dtype=bool), groups)
    assert small.shape[1] == len(names) - len(WORK) - len(SMOKING) + 2 and categorical[-2:].all()
    np.testing.assert_array_equal(expand_matrix(small, names, groups), x)


def _augment(**how):
    """The guide-like rows augmented as asked: (the encoded result, the synthetic rows decoded, the source rows)."""
    frame, y = guide_frame()
    pre = TabularPreprocessor()
    pre.fit(frame)
    out = augment_training_split(pre, pre.transform(frame), frame, y, label_names=["stroke"], seed=1, **how)
    return out, pre.decode(out.rows.compact()[out.synthetic]), pre.decode(out.rows.compact()[~out.synthetic]), frame, y


@pytest.mark.parametrize("generator", ["marginal", "gaussian_copula", "uniform"])
def test_every_generated_row_has_exactly_one_level_of_each_group(generator):
    out, made, _, _, y = _augment(generator=generator, generated_ratio=3.0)
    assert len(made) >= 2 * y.sum()
    for group in (WORK, SMOKING):
        assert (made[group].sum(axis=1) == 1).all()
    assert set(np.unique(made["hypertension"])) <= {0, 1}
    assert out.provenance["onehot_groups"] == {"work_type": WORK, "smoking_status": SMOKING}
    assert set(out.methods[out.synthetic]) == {generator} and set(out.methods[~out.synthetic]) == {""}


@pytest.mark.parametrize("method", ["smotenc", "smote_tomek"])
def test_every_resampled_row_has_exactly_one_level_of_each_group(method):
    _, made, real, frame, _ = _augment(resample_method=method, resample_ratio=0.5)
    assert len(made) > 50
    for group in (WORK, SMOKING):
        assert (made[group].sum(axis=1) == 1).all()
    if method == "smote_tomek":  # Tomek links remove some real rows; the kept ones are unchanged
        return
    pd.testing.assert_frame_equal(real[WORK].reset_index(drop=True), frame[WORK].reset_index(drop=True), check_dtype=False)
