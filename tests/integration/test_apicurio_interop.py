"""Our codec and confluent-kafka's serde on one real Apicurio Registry 3.x (``/apis/ccompat/v7``).

The optional ``apicurio`` group (``AVROFLOW_TEST_APICURIO=1``): the tests of `test_interop_registry`, imported
unchanged: the same bytes from both, cross-decoding, no registry request per message in steady state, and a
new version used without a restart.
"""

from __future__ import annotations

import pytest
from test_interop_registry import (  # noqa: F401 -- pytest collects the imported tests and fixtures here
    client,
    metrics_registry,
    test_a_new_version_is_used_without_a_restart,
    test_confluent_and_our_codec_agree_on_one_real_registry,
    test_steady_state_sends_no_registry_request_per_message,
    topic,
)

from devstack.apicurio import ApicurioRegistry

pytestmark = [pytest.mark.integration, pytest.mark.apicurio]


@pytest.fixture
def registry_url(apicurio_registry: ApicurioRegistry) -> str:
    return apicurio_registry.url
