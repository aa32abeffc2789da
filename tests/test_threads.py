"""CPU threads follow the cores other processes leave free (bakeoff/threads.py)."""

import os

import pytest

from bakeoff import threads


@pytest.fixture(autouse=True)
def fresh(monkeypatch):
    monkeypatch.setattr(threads, "_decision", None)
    monkeypatch.setattr(threads, "_mark", None)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)


def test_omp_num_threads_overrides(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert threads.cpu_threads() == (3, "OMP_NUM_THREADS")


def test_small_work_gets_one_thread(monkeypatch):
    monkeypatch.setattr(threads, "_cores", lambda: 4)
    assert threads.cpu_threads(small=True) == (1, "small work")


def test_others_busy_cores_leaves_out_this_process(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    before = ((1000, 10_000), 5.0, 100.0)
    # over 1 s: 200 jiffies on 2 CPUs, 50 idle -> 1.5 cores busy, 0.5 of them this process
    after = ((1050, 10_200), 5.5, 101.0)
    assert threads.others_busy_cores(before, after) == pytest.approx(1.0)
    assert threads.others_busy_cores(before, ((1050, 10_200), 5.5, 100.01)) is None  # too short to tell


def test_threads_are_the_free_cores_and_the_decision_is_reused(monkeypatch):
    monkeypatch.setattr(threads, "_cores", lambda: 2)
    busy = iter([1.2, 0.1])
    monkeypatch.setattr(threads, "others_busy_cores", lambda before, after: next(busy))
    assert threads.cpu_threads()[0] == 1  # a neighbour takes more than half a core: one thread
    assert threads.cpu_threads()[0] == 1  # reused for DECIDE_EVERY_S
    monkeypatch.setattr(threads, "_decision", (threads._decision[0] - threads.DECIDE_EVERY_S, 1, "old"))
    assert threads.cpu_threads()[0] == 2  # the neighbour left


def test_torch_threads_restores_the_previous_number():
    import torch

    before = torch.get_num_threads()
    with threads.torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
