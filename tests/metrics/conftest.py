import pytest


@pytest.fixture(autouse=True)
def _tiny_models_one_thread(one_torch_thread):
    """Every test here runs tiny models: use the shared one-thread fixture (tests/conftest.py)."""
    yield
