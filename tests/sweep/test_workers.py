"""Worker processes of `--workers N`: one GPU each, a fair share of CPU threads."""

from __future__ import annotations

from recsys_cli.sweep.workers import visible_gpus, worker_env


def test_each_worker_takes_its_own_gpu_round_robin_when_outnumbered() -> None:
    gpus = ["0", "1"]
    assigned = [worker_env({}, i, 3, gpus, cpus=16)["CUDA_VISIBLE_DEVICES"] for i in range(3)]
    assert assigned == ["0", "1", "0"]


def test_the_gpus_this_machine_allows_come_from_cuda_visible_devices() -> None:
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2, 5"}) == ["2", "5"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []


def test_cpu_workers_share_the_cores_unless_the_user_chose_a_thread_count() -> None:
    env = worker_env({"PATH": "/bin"}, 0, 4, [], cpus=16)
    assert env["OMP_NUM_THREADS"] == "4" and "CUDA_VISIBLE_DEVICES" not in env and env["PATH"] == "/bin"
    assert worker_env({"OMP_NUM_THREADS": "1"}, 0, 2, [], cpus=16)["OMP_NUM_THREADS"] == "1"
    assert worker_env({}, 0, 8, [], cpus=2)["OMP_NUM_THREADS"] == "1"
