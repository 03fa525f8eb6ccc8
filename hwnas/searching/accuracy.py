"""Accuracy of subnets: a reusable dataset of evaluated subnets and a predictor fitted on it.

Dataset: subnets of a super-network evaluated with BN recalibration on the fixed validation
split (see :func:`hwnas.supernet.evaluate.evaluate_subnet`), stored as Parquet with the arch
string, its key, resolution, MACs, params, top-1 (%) and the data it was judged on (dataset name
and fingerprint, :meth:`hwnas.datasets.base.Dataset.fingerprint`). Building it is resumable: rows
are saved as they come and archs already present are skipped; resuming on other data is refused.

Predictor: :class:`AccuracyPredictor` follows the latency models' contract (scikit-learn
conventions: hyper-parameters in ``__init__``, ``fit(archs, top1) -> self``, learned state in
trailing-underscore attributes (``dataset_``: the data the accuracies were measured on),
:class:`~hwnas.errors.NotFittedError` before fit,
``predict(archs)`` in %, ``save``/``load`` as JSON — no pickle). It is an ensemble of a ridge
regression on Once-for-All's one-hot arch encoding plus analytic features and gradient-boosted
trees (LightGBM, stored in its own text format inside the JSON) on the same features.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from hwnas.errors import ConfigError, NotFittedError
from hwnas.types import ArchConfig

SCHEMA_VERSION = 1
MIN_SAMPLES = 30


# --------------------------------------------------------------------------- dataset
def load_dataset(path: str | os.PathLike):
    import pandas as pd

    p = Path(path)
    if not p.exists():
        return pd.DataFrame(columns=["arch", "key", "space", "r", "macs_m", "params_m", "top1", "split"])
    return pd.read_parquet(p)


def data_record(df) -> dict | None:
    """``{"name", "fingerprint"}`` of the data an accuracy dataset was judged on (None for a file
    written before datasets were recorded); refuses a file that mixes data."""
    if not len(df) or "data_fingerprint" not in df.columns:
        return None
    fps = sorted(set(df["data_fingerprint"]))
    if len(fps) != 1:
        raise ConfigError(f"This accuracy dataset mixes subnets judged on {len(fps)} datasets ({', '.join(fps)}): "
                          "rebuild it on one with 'hwnas accuracy-dataset --data'.")
    return {"name": str(df["data"].iloc[0]), "fingerprint": fps[0]}


def derived_space_def(space: str) -> str | None:
    """The JSON definition of ``space`` when it is a derived one (kept in every row of its accuracy
    dataset, so the file is fitted on a machine where the space was never derived), else None."""
    from hwnas.registry import SPACES

    if not SPACES.entry(space).meta.get("derived"):
        return None
    from hwnas.supernet.derive import space_to_dict
    from hwnas.supernet.spaces import get_space

    return json.dumps(space_to_dict(get_space(space)))


def register_dataset_space(df) -> None:
    """Register the derived space an accuracy dataset carries, where it is not known yet."""
    from hwnas.registry import SPACES

    if len(df) and "space_def" in df.columns and str(df["space"].iloc[0]) not in SPACES:
        from hwnas.supernet.derive import register_space, space_from_dict

        register_space(space_from_dict(json.loads(df["space_def"].dropna().iloc[0])))


def data_mismatch(what: str, have: dict, data, fix: str) -> ConfigError:
    """The one-line refusal of a result judged on data ``have`` used with ``data`` (a Dataset)."""
    return ConfigError(f"{what} was judged on {have['name']} (fingerprint {have['fingerprint']}); --data "
                       f"{data_spec(data)} is {data.describe()['name']} (fingerprint {data.fingerprint()}). {fix}")


def data_spec(data) -> str:
    """How a command line names the dataset ``data``: its folder, else its registered name."""
    d = data.describe()
    return d["root"] if d.get("name") == "image-folder" else d["name"]


def build_dataset(supernet, n: int, path: str | os.PathLike, calib, val, seed: int = 0,
                  split: str = "val", progress: Callable[[int, int, dict], None] | None = None,
                  data: dict | None = None, n_calib: int | None = None):
    """Evaluate ``n`` subnets (smallest, largest, then seeded uniform samples) into ``path``.

    ``data``: ``{"name", "fingerprint"}`` of the dataset ``calib`` and ``val`` come from
    (:meth:`~hwnas.datasets.base.Dataset.identity`), stored in every row. ``n_calib``: BN
    recalibration images per subnet (default: the evaluation's own). Resumable: archs
    already in the file are skipped (a file of other data is refused); the file is rewritten
    atomically every few rows, so an interruption loses at most those rows.
    """
    import io

    import pandas as pd

    from hwnas.fileio import atomic_write_bytes
    from hwnas.supernet.evaluate import evaluate_subnet

    sp = supernet.space
    df = load_dataset(path)
    if len(df) and set(df["space"]) != {sp.name}:
        raise ConfigError(f"'{path}' holds subnets of {sorted(set(df['space']))}, not '{sp.name}'.")
    space_def = derived_space_def(sp.name)
    have_data = data_record(df)
    if data is not None and len(df) and have_data is None and data["name"] == sp.dataset:
        # written before data was recorded, for a space of the registered dataset it names (Fashion-MNIST's
        # 1-channel spaces: no image folder fits them), so judged on that dataset
        df = df.assign(data=data["name"], data_fingerprint=data["fingerprint"])
        have_data = data
    if data is not None and len(df) and (have_data or {}).get("fingerprint") != data["fingerprint"]:
        was = f"{have_data['name']} (fingerprint {have_data['fingerprint']})" if have_data else "unrecorded data"
        raise ConfigError(f"'{path}' holds subnets judged on {was}, not on {data['name']} (fingerprint "
                          f"{data['fingerprint']}): pass another --out, or the --data it was built on.")
    rows = df.to_dict("records")
    have = {r["key"] for r in rows}
    rng = np.random.default_rng(seed)
    archs = [sp.min_arch(), sp.max_arch()]
    while len({a.key() for a in archs}) < n:
        archs.append(sp.sample(rng))
    archs = list({a.key(): a for a in archs}.values())[:n]

    def flush():
        buf = io.BytesIO()
        pd.DataFrame(rows).to_parquet(buf, index=False)
        atomic_write_bytes(path, buf.getvalue())

    done_since_flush = 0
    for i, a in enumerate(archs):
        if a.key() in have:
            continue
        t0 = time.time()
        acc = evaluate_subnet(supernet, a, calib, val, **({"n_calib": n_calib} if n_calib else {}))
        rows.append({"arch": a.to_str(), "key": a.key(), "space": sp.name, "r": a.r, "macs_m": sp.macs(a) / 1e6,
                     "params_m": sp.params(a) / 1e6, "top1": acc, "split": split, "seconds": time.time() - t0,
                     **({"data": data["name"], "data_fingerprint": data["fingerprint"]} if data else {}),
                     **({"space_def": space_def} if space_def else {})})
        have.add(a.key())
        done_since_flush += 1
        if done_since_flush >= 10:
            flush()
            done_since_flush = 0
        if progress is not None:
            progress(i + 1, len(archs), rows[-1])
    flush()
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- predictor
def features(archs: Sequence[ArchConfig]) -> np.ndarray:
    """One-hot encoding (resolution, kernel and expand per active slot) + depths, MACs, params."""
    from hwnas.supernet.spaces import get_space

    sp = get_space(archs[0].space)
    for a in archs:
        if a.space != sp.name:
            raise ConfigError(f"Mixed spaces in one batch: '{a.space}' and '{sp.name}'.")
    enc = sp.encode(archs)
    extra = np.array([[*a.d, a.r, sp.macs(a) / 1e6, sp.params(a) / 1e6] for a in archs], dtype=np.float64)
    return np.hstack([enc, extra])


class AccuracyPredictor:
    """Predicts top-1 (%) of a subnet; ridge + GBDT ensemble (weights chosen on a held-out fold)."""

    name = "accuracy"
    target = "accuracy_top1"

    def __init__(self, alpha: float = 1.0, n_estimators: int = 400, learning_rate: float = 0.03,
                 num_leaves: int = 15, seed: int = 0) -> None:
        self.alpha = alpha
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.seed = seed

    def get_params(self) -> dict:
        return {k: getattr(self, k) for k in ("alpha", "n_estimators", "learning_rate", "num_leaves", "seed")}

    # -- fit/predict --------------------------------------------------------------
    def fit(self, archs: Sequence[ArchConfig], top1: Sequence[float], dataset: dict | None = None
            ) -> AccuracyPredictor:
        """Fit on subnets and their top-1 (%); ``dataset``: ``{"name", "fingerprint"}`` of the data
        the top-1 figures were measured on (kept with the predictor, which refuses other data)."""
        y = np.asarray(top1, dtype=np.float64)
        if len(archs) < MIN_SAMPLES:
            raise ConfigError(f"An accuracy predictor needs at least {MIN_SAMPLES} evaluated subnets; got "
                              f"{len(archs)}. Build more with 'hwnas accuracy-dataset --n N'.")
        X = features(archs)
        self.space_ = archs[0].space
        self.dataset_ = dict(dataset) if dataset else None
        self.mean_, self.scale_ = X.mean(0), X.std(0) + 1e-9
        # choose the ensemble weight on a seeded 20 % fold, then refit both on everything
        rng = np.random.default_rng(self.seed)
        hold = rng.random(len(y)) < 0.2
        r1, g1 = self._fit_ridge(X[~hold], y[~hold]), self._fit_gbdt(X[~hold], y[~hold])
        pr, pg = self._ridge_predict(r1, X[hold]), np.asarray(g1.predict(X[hold]))
        best_w, best_err = 0.5, np.inf
        for w in np.linspace(0, 1, 11):
            err = float(np.mean((w * pr + (1 - w) * pg - y[hold]) ** 2)) if hold.any() else 0.0
            if err < best_err:
                best_w, best_err = float(w), err
        self.weight_ridge_ = best_w
        self.ridge_ = self._fit_ridge(X, y)
        self.booster_ = self._fit_gbdt(X, y).booster_
        self.n_train_ = len(y)
        return self

    def _fit_ridge(self, X, y):
        Z = (X - self.mean_) / self.scale_
        A = np.hstack([Z, np.ones((len(Z), 1))])
        reg = self.alpha * np.eye(A.shape[1])
        reg[-1, -1] = 0.0
        return np.linalg.solve(A.T @ A + reg, A.T @ y)

    def _ridge_predict(self, coef, X):
        Z = (X - self.mean_) / self.scale_
        return Z @ coef[:-1] + coef[-1]

    def _fit_gbdt(self, X, y):
        import lightgbm as lgb

        m = lgb.LGBMRegressor(n_estimators=self.n_estimators, learning_rate=self.learning_rate,
                              num_leaves=self.num_leaves, min_child_samples=5, subsample=0.8, subsample_freq=1,
                              colsample_bytree=0.8, random_state=self.seed, verbose=-1, n_jobs=1)
        return m.fit(X, y)

    def predict(self, archs: Sequence[ArchConfig]) -> np.ndarray:
        if not hasattr(self, "ridge_"):
            raise NotFittedError("This AccuracyPredictor is not fitted yet: call fit(archs, top1) or load(path).")
        if not archs:
            return np.zeros(0)
        if archs[0].space != self.space_:
            raise ConfigError(f"This accuracy predictor was fitted on '{self.space_}', not '{archs[0].space}'.")
        X = features(archs)
        w = self.weight_ridge_
        return w * self._ridge_predict(self.ridge_, X) + (1 - w) * self.booster_.predict(X)

    # -- persistence ----------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        from hwnas.fileio import atomic_write_json

        if not hasattr(self, "ridge_"):
            raise NotFittedError("Fit the predictor before saving it.")
        return atomic_write_json(path, {
            "schema_version": SCHEMA_VERSION, "kind": "hwnas-accuracy-predictor", "space": self.space_,
            "params": self.get_params(), "n_train": self.n_train_, "dataset": self.dataset_,
            "weight_ridge": self.weight_ridge_,
            "mean": self.mean_.tolist(), "scale": self.scale_.tolist(), "ridge": self.ridge_.tolist(),
            "booster": self.booster_.model_to_string()})

    @classmethod
    def load(cls, path: str | os.PathLike) -> AccuracyPredictor:
        import lightgbm as lgb

        p = Path(path)
        try:
            d = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"Cannot read accuracy predictor '{p}' ({exc}).") from None
        if d.get("kind") != "hwnas-accuracy-predictor":
            raise ConfigError(f"'{p}' is not an hwnas accuracy predictor.")
        if d.get("schema_version") != SCHEMA_VERSION:
            raise ConfigError(f"Accuracy predictor '{p}' has schema {d.get('schema_version')}; this hwnas reads "
                              f"{SCHEMA_VERSION}. Refit it with 'hwnas fit-accuracy'.")
        m = cls(**d["params"])
        m.space_, m.n_train_, m.weight_ridge_ = d["space"], d["n_train"], d["weight_ridge"]
        m.dataset_ = d.get("dataset")
        m.mean_, m.scale_ = np.array(d["mean"]), np.array(d["scale"])
        m.ridge_ = np.array(d["ridge"])
        m.booster_ = lgb.Booster(model_str=d["booster"])
        return m


def fit_with_holdout(df, holdout: int = 100, seed: int = 0, data=None) -> tuple[AccuracyPredictor, dict]:
    """Score a predictor fitted without ``holdout`` random rows of the dataset ``df`` on those rows
    (Kendall τ, Spearman, RMSE), then return one refitted on every row, with the report.

    ``data`` (a Dataset, optional): checked against the data the rows record — a file judged on
    other data is refused — and recorded as the predictor's data when the file records none."""
    from scipy.stats import kendalltau, spearmanr

    register_dataset_space(df)
    archs = [ArchConfig.parse(a) for a in df["arch"]]
    y = df["top1"].to_numpy()
    record = data_record(df)
    if data is not None and record is not None and record["fingerprint"] != data.fingerprint():
        raise data_mismatch("This accuracy dataset", record, data,
                            f"Build one on this data: 'hwnas accuracy-dataset --data {data_spec(data)}'.")
    data = record or (data.identity() if data is not None else None)
    idx = np.random.default_rng(seed).permutation(len(y))
    hold, train = idx[:holdout], idx[holdout:]
    m = AccuracyPredictor(seed=seed).fit([archs[i] for i in train], y[train], data)
    p = m.predict([archs[i] for i in hold])
    rep = {"n_train": int(len(train)), "n_holdout": int(len(hold)), "kendall_tau": float(kendalltau(p, y[hold])[0]),
           "spearman": float(spearmanr(p, y[hold])[0]), "rmse_pts": float(np.sqrt(np.mean((p - y[hold]) ** 2)))}
    return AccuracyPredictor(seed=seed).fit(archs, y, data), rep


SHIPPED_DIR = Path(__file__).resolve().parent.parent / "data" / "accuracy"


def shipped_predictor(space: str) -> Path | None:
    p = SHIPPED_DIR / f"{space}.predictor.json"
    return p if p.is_file() else None


def load_accuracy_predictor(space: str, path: str | os.PathLike | None = None, data=None) -> AccuracyPredictor:
    """The predictor at ``path``, else the one shipped for ``space``; a clear error otherwise.

    ``data`` (a :class:`~hwnas.datasets.base.Dataset`): the data the caller judges subnets on; a
    predictor fitted on other data is refused (one recorded without its data — the shipped ones —
    is taken to be fitted on the space's own dataset, and compared by name)."""
    p = Path(path) if path is not None else shipped_predictor(space)
    if p is None:
        shipped = sorted(q.name.split(".")[0] for q in SHIPPED_DIR.glob("*.predictor.json"))
        raise ConfigError(f"No accuracy predictor for space '{space}' (hwnas ships them for {', '.join(shipped)}): "
                          "pass --accuracy-predictor PATH, a predictor fitted with 'hwnas fit-accuracy' on a dataset "
                          "built with 'hwnas accuracy-dataset --checkpoint P'.")
    m = AccuracyPredictor.load(p)
    if m.space_ != space:
        raise ConfigError(f"Accuracy predictor '{p}' is for space '{m.space_}', not '{space}'.")
    if data is not None:
        check_predictor_data(m, p, data)
    return m


def check_predictor_data(m: AccuracyPredictor, path, data) -> None:
    """Refuse ``data`` when the predictor's accuracies were measured on another dataset."""
    from hwnas.supernet.spaces import get_space

    have = m.dataset_
    same = (have["fingerprint"] == data.fingerprint() if have
            else data.describe()["name"] == get_space(m.space_).dataset)
    if not same:
        have = have or {"name": get_space(m.space_).dataset, "fingerprint": "not recorded"}
        spec = data_spec(data)
        raise data_mismatch(f"Accuracy predictor '{path}'", have, data,
                            f"Refit it on this data: 'hwnas accuracy-dataset --space {m.space_} --data {spec} --out "
                            f"acc.parquet', then 'hwnas fit-accuracy acc.parquet --data {spec} --out "
                            "predictor.json'.")
