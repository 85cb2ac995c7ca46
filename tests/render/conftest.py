import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models: one thread is fastest on the shared 2-core machine (restored afterwards)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
