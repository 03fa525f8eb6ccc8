"""Accuracy dataset (resumable, real evaluations of the shipped tiny super-network) and predictor."""

import numpy as np
import pytest
from scipy.stats import kendalltau

from hwnas.errors import ConfigError, NotFittedError
from hwnas.searching.accuracy import AccuracyPredictor, build_dataset, load_dataset
from hwnas.types import ArchConfig

pytestmark = [pytest.mark.data, pytest.mark.slow]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from hwnas.supernet import load_supernet
    from hwnas.datasets import get_dataset

    net, _ = load_supernet("tiny-mbv3")
    train, val = get_dataset("fashion-mnist").splits("train", "val")
    calib, val = train.subset(np.arange(300)), val.subset(np.arange(800))
    path = tmp_path_factory.mktemp("acc") / "tiny.parquet"
    first = build_dataset(net, 16, path, calib, val, seed=0)
    seen = []
    df = build_dataset(net, 44, path, calib, val, seed=0, progress=lambda i, n, row: seen.append(row["key"]))
    return first, df, seen, path


def test_dataset_is_resumable_and_complete(dataset):
    first, df, seen, path = dataset
    assert len(first) == 16 and len(df) == 44
    assert not set(first["key"]) & set(seen)  # the first 16 were not evaluated again
    assert len(seen) == 28
    assert df["top1"].between(10, 100).all() and df["key"].is_unique
    assert load_dataset(path)["key"].tolist() == df["key"].tolist()
    assert df["top1"].max() - df["top1"].min() > 1.0  # subnets really differ


def test_predictor_fit_predict_save_load(dataset, tmp_path):
    _, df, _, _ = dataset
    archs = [ArchConfig.parse(a) for a in df["arch"]]
    y = df["top1"].to_numpy()
    with pytest.raises(NotFittedError):
        AccuracyPredictor().predict(archs[:2])
    with pytest.raises(ConfigError, match="at least 30"):
        AccuracyPredictor().fit(archs[:10], y[:10])
    m = AccuracyPredictor(seed=0).fit(archs[:34], y[:34])
    pred = m.predict(archs[34:])
    assert pred.shape == (10,)
    assert kendalltau(pred, y[34:])[0] > 0.2  # ranks held-out subnets better than chance
    m.save(tmp_path / "p.json")
    m2 = AccuracyPredictor.load(tmp_path / "p.json")
    assert np.allclose(m2.predict(archs), m.predict(archs))
    from hwnas.supernet.spaces import get_space

    with pytest.raises(ConfigError, match="fitted on 'tiny-mbv3'"):
        m.predict([get_space("fmnist-mbv3").min_arch()])
    (tmp_path / "bad.json").write_text('{"kind": "hwnas-accuracy-predictor", "schema_version": 99}')
    with pytest.raises(ConfigError, match="schema 99"):
        AccuracyPredictor.load(tmp_path / "bad.json")
