"""Training through a real Dask cluster: two worker processes, joblib's dask backend."""

from __future__ import annotations

import numpy as np
import pytest
from safetensors.numpy import load_file

from ddsp_augment.training.preprocess import preprocess_folder
from ddsp_augment.training.train import TrainSettings, train_folder

distributed = pytest.importorskip("distributed", reason="the [distributed] extra is not installed")

TINY = TrainSettings(
    epochs=1,
    steps_per_epoch=2,
    batch_size=2,
    crop_seconds=0.25,
    decoder={"hidden": 8, "n_layers": 1},
    seed=0,
    threads=1,
    device="cpu",
)


@pytest.fixture(scope="module")
def processed(tonal_clips, tmp_path_factory):
    data = tmp_path_factory.mktemp("cluster-data")
    for species, paths in tonal_clips.items():
        (data / species).mkdir()
        for path in paths[:2]:
            (data / species / path.name).symlink_to(path)
    out = tmp_path_factory.mktemp("cluster-processed")
    preprocess_folder(data, out, progress=False)
    return out


def test_two_species_train_the_same_on_a_local_dask_cluster(processed, tmp_path):
    from joblib import parallel_config

    local = train_folder(processed, tmp_path / "local", TINY, jobs=1, progress=False)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
        parallel_config(backend="dask"),
        distributed.get_task_stream(client) as stream,
    ):
        remote = train_folder(processed, tmp_path / "dask", TINY, jobs=2, progress=False)
        workers = set(client.scheduler_info()["workers"])
    # the training ran as tasks in the cluster's two worker processes
    assert len(workers) == 2
    assert stream.data and {task["worker"] for task in stream.data} <= workers
    assert [r["species"] for r in remote] == ["Fringilla_coelebs", "Parus_major"]
    assert [r["status"] for r in remote] == ["trained", "trained"]
    for mine, theirs in zip(local, remote, strict=True):
        assert theirs["val_spectral_distance"] == mine["val_spectral_distance"]
        ours = load_file(tmp_path / "local" / mine["species"] / "weights.safetensors")
        cluster_weights = load_file(tmp_path / "dask" / mine["species"] / "weights.safetensors")
        assert sorted(ours) == sorted(cluster_weights)
        for name, weight in ours.items():
            np.testing.assert_array_equal(cluster_weights[name], weight, err_msg=name)
