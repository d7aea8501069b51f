from collections.abc import Iterator

import pytest

from . import helpers


@pytest.fixture(autouse=True, params=list(helpers.WS_IMPLS))
def _ws_impl(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every core test against both send paths: direct writes under collab's
    uvicorn protocol, and the queued ASGI send under stock uvicorn."""
    helpers.ws_impl = request.param
    yield
    helpers.ws_impl = "collab-protocol"
