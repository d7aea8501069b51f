import gc
from collections.abc import Iterator

import pytest

# Real Redis (TLS, AUTH, a cluster), PostgreSQL and test PKI for every test module.
pytest_plugins = ["tests.support.fixtures"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Collect after every test, so an unclosed socket or transport warns
    (and fails, warnings being errors) in the test that leaked it, not in
    whichever test happens to run when the collector next passes."""
    yield
    gc.collect()
