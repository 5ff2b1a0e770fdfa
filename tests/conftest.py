"""Shared test settings: the test machine's 2 cores are shared, so tests run torch on one thread
(the study itself pins its own thread count per cell)."""
import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
