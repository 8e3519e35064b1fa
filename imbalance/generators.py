"""Built-in generators of synthetic minority-class rows, for users without an external data designer.

A generator is fitted on the training split's minority rows only and samples new rows in the
ORIGINAL column space: the same column names, numeric columns as float64 in original units,
binary and categorical columns as their original values (0/1 ints stay 0/1 ints, "yes"/"no" stay
strings). The toolkit then runs those rows through the fitted preprocessor like any others.

- ``marginal``: every column independently from the minority rows' own distribution. Numeric
  values are a smoothed bootstrap (an observed value plus Gaussian noise of Silverman's
  bandwidth, on the normal-score scale so that skewed columns smooth well, within the observed
  range); levels by their minority frequencies. This is what
  an LLM data-designer recipe does ("each feature from the minority distribution"), and like it,
  it destroys every correlation between columns.
- ``gaussian_copula``: the same marginals, joined by a Gaussian copula so that correlations
  survive. Numeric columns become normal scores through their empirical CDF; a discrete column's
  levels are contiguous intervals of the latent normal, so its latent correlations are estimated
  polyserial-style (numeric-discrete) or polychoric-style (discrete-discrete). The latter matters
  for multi-label use: label columns passed as "binary" keep their co-occurrence.

- ``uniform``: the stroke augmentation guide's recipe: numbers uniform between the minority
  minimum and maximum, levels by their minority frequencies, columns independent. Crude (a
  skewed lab value is spread evenly over its range), but what the guide's users know.

- ``ctgan`` and ``tvae``: the conditional GAN and the variational autoencoder of Xu et al.
  (2019), from the ``ctgan`` package, sized for a CPU; they learn the joint distribution,
  including non-linear dependencies a copula misses, but need a few hundred rows to do it well.

The first three reproduce each column's missing rate (independently of everything else); the
deep ones learn where values are missing with the rest. None invents a level that the minority
rows lack, and each is deterministic for a seed.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping, Optional, Protocol

import numpy as np
import pandas as pd
from scipy import stats

from .errors import UserError
from .registry import Registry

__all__ = ["GENERATORS", "Generator", "build_generator", "MarginalGenerator", "UniformGenerator", "GaussianCopulaGenerator",
           "CTGANGenerator", "TVAEGenerator"]

logger = logging.getLogger(__name__)

KINDS = ("numeric", "binary", "categorical")
# Smallest eigenvalue allowed in the copula correlation; below it we shrink towards identity.
_MIN_EIGENVALUE = 1e-3
# Latent correlations are kept inside this bound: at +-1 the copula degenerates.
_MAX_CORR = 0.995


class Generator(Protocol):
    """What every registry entry builds (called with ``seed=``)."""

    def fit(self, frame: pd.DataFrame, kinds: Mapping[str, str]) -> "Generator": ...

    def sample(self, n: int) -> pd.DataFrame: ...


GENERATORS: Registry[Callable[..., Generator]] = Registry("generator")


def build_generator(name: str, *, seed: int = 0, epochs: Optional[int] = None) -> Generator:
    """An unfitted generator; an unknown name fails with the list of choices. ``epochs``: the
    deep generators' training epochs (their CPU-sized default when None)."""
    build = GENERATORS.get(name)
    return build(seed=seed, epochs=epochs) if epochs is not None and issubclass(build, _Deep) else build(seed=seed)


# -- columns ----------------------------------------------------------------------------------
class _Column:
    """One fitted column: its missing rate and its distribution over present values.

    Numeric: the sorted present values (float64). Binary/categorical: the levels (original
    values, in a stable order so that ordered levels such as grades stay ordered in the copula)
    and their frequencies.
    """

    def __init__(self, name: str, kind: str, series: pd.Series) -> None:
        self.name, self.kind, self.dtype = name, kind, series.dtype
        if kind == "numeric":
            values = _to_float(series)
            values = np.where(np.isfinite(values), values, np.nan)  # +-inf would wreck ranks and ranges
            present = values[~np.isnan(values)]
            self.values = np.sort(present)
            self.integer = bool(len(present)) and bool(np.all(present == np.round(present)))
            self.n_present = len(present)
            self.missing_rate = 1.0 - len(present) / len(series)
            self.codes: Optional[np.ndarray] = None
            self.raw = values
        else:
            present_mask = series.notna().to_numpy()
            self.levels = _ordered_levels(series[present_mask])
            index = pd.Index(self.levels, dtype=object)
            codes = np.full(len(series), -1, dtype=np.int64)
            codes[present_mask] = index.get_indexer(series[present_mask].astype(object))
            counts = np.bincount(codes[present_mask], minlength=len(self.levels)).astype(np.float64)
            self.freqs = counts / max(counts.sum(), 1.0)
            self.n_present = int(present_mask.sum())
            self.missing_rate = 1.0 - self.n_present / len(series)
            self.codes = codes

    @property
    def empty(self) -> bool:
        return self.n_present == 0

    def missing_mask(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.random(n) < self.missing_rate

    def output(self, values: np.ndarray, missing: np.ndarray) -> pd.Series:
        """Sampled numbers (numeric) or level codes (discrete) -> a Series like the input's."""
        if self.kind == "numeric":
            out = np.where(missing, np.nan, values.astype(np.float64))
            return pd.Series(out, dtype="float64", name=self.name)
        levels = np.asarray(self.levels + [np.nan], dtype=object)
        codes = np.where(missing | self.empty, len(self.levels), values).astype(np.int64)
        series = pd.Series(levels[codes], dtype=object, name=self.name)
        try:
            return series.astype(self.dtype)
        except (TypeError, ValueError):  # e.g. an exotic extension dtype; values are still right
            return series


def _to_float(series: pd.Series) -> np.ndarray:
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return series.astype("float64").to_numpy(dtype=np.float64, na_value=np.nan)
    parsed = pd.to_numeric(series.astype("string").str.strip(), errors="coerce")
    return parsed.astype("float64").to_numpy(dtype=np.float64, na_value=np.nan)


def _ordered_levels(present: pd.Series) -> list[Any]:
    levels = list(pd.unique(present.astype(object)))
    try:
        return sorted(levels)
    except TypeError:  # mixed types: order by text, still deterministic
        return sorted(levels, key=lambda level: (type(level).__name__, str(level)))


def _fit_columns(frame: pd.DataFrame, kinds: Mapping[str, str]) -> list[_Column]:
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"frame must be a pandas DataFrame, not {type(frame).__name__}")
    if not frame.columns.is_unique:
        raise ValueError("frame has duplicate column names")
    unknown = [str(c) for c in frame.columns if c not in kinds]
    if unknown:
        raise ValueError(f"no kind given for column(s) {', '.join(unknown)}")
    bad = {str(c): kinds[c] for c in frame.columns if kinds[c] not in KINDS}
    if bad:
        raise ValueError(f"unknown column kind(s) {bad}; use one of {', '.join(KINDS)}")
    if len(frame) < 2:
        raise UserError(
            f"a synthetic-row generator needs at least 2 minority rows to fit; the training split has {len(frame)}"
        )
    columns = [_Column(name, kinds[name], frame[name]) for name in frame.columns]
    for column in columns:
        if column.empty:
            logger.warning("column '%s' is empty in the minority rows; generated rows leave it missing", column.name)
    return columns


def _assemble(columns: list[_Column], parts: list[pd.Series]) -> pd.DataFrame:
    return pd.DataFrame({column.name: part for column, part in zip(columns, parts)})


class _Base:
    def __init__(self, *, seed: int = 0) -> None:
        self.seed = int(seed)
        self._rng = np.random.default_rng(self.seed)
        self.columns_: Optional[list[_Column]] = None

    def _fitted(self) -> list[_Column]:
        if self.columns_ is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted; call fit() first")
        return self.columns_

    def _empty(self) -> pd.DataFrame:
        none = np.zeros(0, dtype=bool)
        return _assemble(self._fitted(), [c.output(np.zeros(0), none) for c in self._fitted()])


# -- marginal ---------------------------------------------------------------------------------
class _Independent(_Base):
    """Every column on its own: levels by their minority frequencies, numbers as the subclass
    draws them (:meth:`_numbers`), each column's missing rate kept."""

    def fit(self, frame: pd.DataFrame, kinds: Mapping[str, str]) -> "_Independent":
        self.columns_ = _fit_columns(frame, kinds)
        return self

    def _numbers(self, j: int, column: _Column, rng: np.random.Generator, n: int) -> np.ndarray:
        raise NotImplementedError

    def sample(self, n: int) -> pd.DataFrame:
        columns = self._fitted()
        n = int(n)
        if n <= 0:
            return self._empty()
        rng, parts = self._rng, []
        for j, column in enumerate(columns):
            missing = column.missing_mask(rng, n)
            if column.empty:
                values = np.zeros(n)
            elif column.kind == "numeric":
                values = self._numbers(j, column, rng, n)
            else:
                values = rng.choice(len(column.levels), size=n, p=column.freqs)
            parts.append(column.output(values, missing))
        return _assemble(columns, parts)


@GENERATORS.register("marginal")
class MarginalGenerator(_Independent):
    """Each column independently: smoothed bootstrap for numbers, frequencies for levels."""

    def fit(self, frame: pd.DataFrame, kinds: Mapping[str, str]) -> "MarginalGenerator":
        super().fit(frame, kinds)
        self.smoothers_ = [
            _ScoreSmoother(c.values) if c.kind == "numeric" and not c.empty else None for c in self.columns_
        ]
        return self

    def _numbers(self, j: int, column: _Column, rng: np.random.Generator, n: int) -> np.ndarray:
        values = self.smoothers_[j].sample(rng, n)
        return np.round(values) if column.integer else values


@GENERATORS.register("uniform")
class UniformGenerator(_Independent):
    """The stroke augmentation guide's recipe: each numeric column uniform between the minority
    rows' minimum and maximum (whole numbers stay whole), each level by its minority frequency,
    every column independently."""

    def _numbers(self, j: int, column: _Column, rng: np.random.Generator, n: int) -> np.ndarray:
        low, high = column.values[0], column.values[-1]
        if column.integer:  # every whole number in [min, max] equally likely
            return rng.integers(int(low), int(high), n, endpoint=True).astype(np.float64)
        return rng.uniform(low, high, n)


class _ScoreSmoother:
    """Smoothed bootstrap of one numeric column, smoothed on the normal-score scale.

    Draw an observed value, move it to its normal score (empirical CDF, rank/(n+1)), add
    Gaussian noise of Silverman's bandwidth there and map back through the interpolated
    empirical quantile function, which clamps to [min, max]. One bandwidth in original units
    would blur the dense end of a skewed column (lab values, lognormal-like) and pile mass on
    its minimum when clipped; on the score scale every column is near-normal, so the rule fits.
    """

    def __init__(self, sorted_values: np.ndarray) -> None:
        self.levels, counts = np.unique(sorted_values, return_counts=True)
        upper = np.cumsum(counts)  # average rank of each distinct value = (first + last) / 2
        self.level_scores = stats.norm.ppf((upper - (counts - 1) / 2) / (len(sorted_values) + 1))
        self.scores = np.repeat(self.level_scores, counts)
        self.bandwidth = _silverman(self.scores)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        z = self.scores[rng.integers(0, len(self.scores), n)] + self.bandwidth * rng.standard_normal(n)
        if len(self.levels) == 1:
            return np.full(n, self.levels[0])
        return np.interp(z, self.level_scores, self.levels)


def _silverman(values: np.ndarray) -> float:
    """Silverman's rule of thumb, 0.9 min(sd, IQR/1.34) n^(-1/5); robust to a zero IQR."""
    if len(values) < 2:
        return 0.0
    sd = float(np.std(values, ddof=1))
    iqr = float(np.subtract(*np.percentile(values, [75, 25])))
    spread = min(sd, iqr / 1.34) if iqr > 0 else sd
    return 0.9 * spread * len(values) ** -0.2


# -- Gaussian copula --------------------------------------------------------------------------
@GENERATORS.register("gaussian_copula")
class GaussianCopulaGenerator(_Base):
    """Empirical marginals joined by a Gaussian copula, so that correlations survive.

    Numeric values are mapped back through the interpolated empirical quantile function, so they
    stay within the observed range; a level is the one whose CDF interval holds Phi(z).
    """

    def fit(self, frame: pd.DataFrame, kinds: Mapping[str, str]) -> "GaussianCopulaGenerator":
        columns = _fit_columns(frame, kinds)
        scores, discrete = [], []
        for column in columns:
            score = np.full(len(frame), np.nan)
            if column.empty:
                discrete.append(None)
            elif column.kind == "numeric":
                present = ~np.isnan(column.raw)
                ranks = stats.rankdata(column.raw[present])  # ties share their average rank
                score[present] = stats.norm.ppf(ranks / (column.n_present + 1))
                discrete.append(None)
            else:
                info = _LevelScores(column.freqs)
                present = column.codes >= 0
                score[present] = info.means[column.codes[present]]
                discrete.append(info)
            scores.append(score)
        self.columns_ = columns
        self.corr_ = _latent_correlation(np.column_stack(scores), discrete)
        self._chol = np.linalg.cholesky(self.corr_)
        return self

    def sample(self, n: int) -> pd.DataFrame:
        columns = self._fitted()
        n = int(n)
        if n <= 0:
            return self._empty()
        rng = self._rng
        u = stats.norm.cdf(rng.standard_normal((n, len(columns))) @ self._chol.T)
        parts = []
        for j, column in enumerate(columns):
            missing = column.missing_mask(rng, n)
            if column.empty:
                values = np.zeros(n)
            elif column.kind == "numeric":
                grid = np.arange(1, column.n_present + 1) / (column.n_present + 1)
                values = np.interp(u[:, j], grid, column.values)  # clamps to [min, max]
                if column.integer:
                    values = np.round(values)
            else:
                values = np.minimum(np.searchsorted(np.cumsum(column.freqs), u[:, j]), len(column.levels) - 1)
            parts.append(column.output(values, missing))
        return _assemble(columns, parts)


class _LevelScores:
    """A discrete column as intervals of a latent standard normal Z, one per level by frequency.

    Each level scores E[Z | its interval], so the scores have mean 0 and standard deviation
    ``sd`` < 1 (the share of Z's variance the levels keep). ``thresholds`` are the interior cut
    points and ``jumps`` the score increase across each.
    """

    def __init__(self, freqs: np.ndarray) -> None:
        edges = stats.norm.ppf(np.clip(np.concatenate([[0.0], np.cumsum(freqs)]), 0.0, 1.0))
        edges[0], edges[-1] = -np.inf, np.inf
        pdf = stats.norm.pdf(edges)
        means = (pdf[:-1] - pdf[1:]) / freqs  # every level was seen, so no frequency is 0
        self.means = means
        self.thresholds = edges[1:-1]
        self.jumps = np.diff(means)
        self.sd = float(np.sqrt(np.sum(freqs * means**2)))


def _latent_correlation(scores: np.ndarray, discrete: list[Optional[_LevelScores]]) -> np.ndarray:
    """Correlation of the latent normals, from pairwise-complete correlations of the scores.

    numeric-numeric: the normal scores' correlation. numeric-discrete: observed / sd (exact for
    a latent normal, since cov(Z1, E[Z2|level]) = rho var(E[Z2|level])). discrete-discrete:
    solved numerically (:func:`_polychoric`). Constant columns get 0. The result is shrunk
    towards the identity just enough to be safely positive definite.
    """
    p = scores.shape[1]
    observed = pd.DataFrame(scores).corr(min_periods=3).to_numpy()
    corr = np.eye(p)
    for i in range(p):
        for j in range(i + 1, p):
            r = observed[i, j]
            if not np.isfinite(r):
                continue
            a, b = discrete[i], discrete[j]
            if a is not None and b is not None:
                rho = _polychoric(r * a.sd * b.sd, a, b) if a.sd > 0 and b.sd > 0 else 0.0
            elif a is not None or b is not None:
                sd = (a or b).sd  # type: ignore[union-attr]
                rho = r / sd if sd > 0 else 0.0
            else:
                rho = r
            corr[i, j] = corr[j, i] = float(np.clip(rho, -_MAX_CORR, _MAX_CORR))
    smallest = float(np.linalg.eigvalsh(corr)[0]) if p else 1.0
    if smallest < _MIN_EIGENVALUE:
        shrink = (_MIN_EIGENVALUE - smallest) / (1.0 - smallest)
        logger.debug("copula correlation near-singular (min eigenvalue %.2g); shrinking by %.3f", smallest, shrink)
        corr = (1.0 - shrink) * corr + shrink * np.eye(p)
    return corr


_RHO_GRID = np.linspace(-_MAX_CORR, _MAX_CORR, 399)  # symmetric, holds 0 at its middle


def _polychoric(cov: float, a: _LevelScores, b: _LevelScores) -> float:
    """The latent rho at which the two columns' scores have covariance ``cov``.

    For step functions of a bivariate normal, d cov / d rho = sum over cut-point pairs of
    jump_a * jump_b * phi2(t_a, t_b; rho) > 0, so cov(rho) is increasing from cov(0) = 0 and is
    inverted by integrating that derivative over a grid of rho.
    """
    r = _RHO_GRID[None, None, :]
    ta, tb = a.thresholds[:, None, None], b.thresholds[None, :, None]
    one_minus = 1.0 - r**2
    density = np.exp(-(ta**2 - 2 * r * ta * tb + tb**2) / (2 * one_minus)) / (2 * np.pi * np.sqrt(one_minus))
    slope = np.einsum("a,b,abg->g", a.jumps, b.jumps, density)
    steps = np.concatenate([[0.0], np.cumsum((slope[1:] + slope[:-1]) / 2 * np.diff(_RHO_GRID))])
    curve = steps - steps[len(_RHO_GRID) // 2]
    return float(np.interp(cov, curve, _RHO_GRID))


# -- CTGAN and TVAE (the ctgan package) ----------------------------------------------------------
class _Deep(_Base):
    """A generator from the ``ctgan`` package (Xu et al. 2019), fitted on the minority rows.

    The package takes no missing numbers: a numeric column with missing values goes in filled
    with its median beside a yes/no column saying which were missing, and comes back missing
    where the generator set that column. Discrete columns go in as their level codes (missing: a
    level of its own). Rows with a number outside the minority range are drawn again (clipping
    them would pile mass at the range's limits; after 10 draws what is left is clipped), whole
    numbers stay whole, so the output is like the other generators'. Seeded: the package's own random state
    (numpy and torch), so a seed gives the same rows.
    """

    EPOCHS = 300  # a few hundred optimiser steps on a few hundred minority rows: stroke's in well under 2 minutes

    def __init__(self, *, seed: int = 0, epochs: Optional[int] = None) -> None:
        super().__init__(seed=seed)
        self.epochs = int(epochs or self.EPOCHS)

    def _build(self, n_rows: int) -> Any:
        raise NotImplementedError

    def fit(self, frame: pd.DataFrame, kinds: Mapping[str, str]) -> "_Deep":
        columns = _fit_columns(frame, kinds)
        data, discrete = {}, []
        for j, column in enumerate(columns):
            key = f"c{j}"
            if column.empty:
                continue
            if column.kind == "numeric":
                values = column.raw
                data[key] = np.where(np.isnan(values), np.median(column.values), values)
                if column.missing_rate > 0:
                    data[f"{key}_missing"] = np.where(np.isnan(values), "1", "0")
                    discrete.append(f"{key}_missing")
            else:
                data[key] = np.where(column.codes >= 0, column.codes.astype(str), "missing")
                discrete.append(key)
        self.columns_ = columns
        self.model_ = self._build(len(frame))
        self.model_.set_random_state(self.seed)
        self.model_.fit(pd.DataFrame(data), discrete_columns=discrete)
        return self

    def sample(self, n: int) -> pd.DataFrame:
        columns = self._fitted()
        n = int(n)
        if n <= 0:
            return self._empty()
        made = self._in_range(n)
        parts = []
        for j, column in enumerate(columns):
            key = f"c{j}"
            if column.empty:
                parts.append(column.output(np.zeros(n), np.ones(n, dtype=bool)))
            elif column.kind == "numeric":
                values = np.clip(made[key].to_numpy(dtype=np.float64), column.values[0], column.values[-1])
                if column.integer:
                    values = np.round(values)
                missing = (made[f"{key}_missing"].astype(str) == "1").to_numpy() if column.missing_rate > 0 else np.zeros(n, dtype=bool)
                parts.append(column.output(values, missing))
            else:
                text = made[key].astype(str).to_numpy()
                missing = text == "missing"
                codes = np.where(missing, 0, pd.to_numeric(pd.Series(text), errors="coerce").fillna(0).to_numpy()).astype(np.int64)
                parts.append(column.output(codes, missing))
        return _assemble(columns, parts)


    def _in_range(self, n: int, rounds: int = 10) -> pd.DataFrame:
        """``n`` rows from the model, drawing again the rows whose numbers fall outside the
        minority range (clipping them would pile mass at the limits); after ``rounds`` draws the
        rows still outside are kept, and clipped by :meth:`sample`."""
        numeric = [(f"c{j}", c.values[0], c.values[-1]) for j, c in enumerate(self._fitted()) if c.kind == "numeric" and not c.empty]
        kept, short = [], n
        for _ in range(rounds):
            draw = self.model_.sample(short)
            inside = np.ones(len(draw), dtype=bool)
            for key, low, high in numeric:
                values = draw[key].to_numpy(dtype=np.float64)
                inside &= (values >= low) & (values <= high)
            kept.append(draw[inside])
            short -= int(inside.sum())
            if short == 0:
                break
        else:
            kept.append(draw[~inside].iloc[:short])
        return pd.concat(kept, ignore_index=True).iloc[:n]


def _import_ctgan() -> Any:
    try:
        import ctgan
    except ImportError as exc:  # pragma: no cover - the package is in requirements.txt
        raise UserError("--generator ctgan/tvae needs the ctgan package: pip install -r requirements.txt") from exc
    return ctgan


@GENERATORS.register("ctgan")
class CTGANGenerator(_Deep):
    """CTGAN: a conditional GAN with mode-specific normalisation of numbers, sized for a CPU
    (two 128-unit layers each side; batches of at most 500 rows, a multiple of its pac of 10)."""

    def _build(self, n_rows: int) -> Any:
        pac = 10
        batch = max(2 * pac, min(500, (n_rows // pac) * pac))
        return _import_ctgan().CTGAN(embedding_dim=64, generator_dim=(128, 128), discriminator_dim=(128, 128),
                                     batch_size=batch, epochs=self.epochs, pac=pac, enable_gpu=False)


@GENERATORS.register("tvae")
class TVAEGenerator(_Deep):
    """TVAE: the variational autoencoder of the same paper, sized for a CPU (two 128-unit layers
    each side; batches of at most 500 rows)."""

    def _build(self, n_rows: int) -> Any:
        batch = max(2, min(500, n_rows))
        return _import_ctgan().TVAE(embedding_dim=64, compress_dims=(128, 128), decompress_dims=(128, 128),
                                    batch_size=batch, epochs=self.epochs, enable_gpu=False)
