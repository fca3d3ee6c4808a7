from __future__ import annotations

import pytest

from llmos.network.errors import InvalidArgument
from llmos.network.modes import NetworkModePlan, plan_network_mode


def test_modes() -> None:
    default = NetworkModePlan("bridge", new_netns=True, network="bridge", can_publish=True)
    assert plan_network_mode(None) == default
    assert plan_network_mode("bridge") == default
    assert plan_network_mode("host") == NetworkModePlan("host", new_netns=False, use_host_etc=True)
    none = plan_network_mode("none")
    assert none.new_netns and none.loopback_only and none.network is None
    shared = plan_network_mode("container:web")
    assert shared.join_container == "web" and not shared.new_netns and not shared.can_publish
    user = plan_network_mode("front-1")
    assert user.network == "front-1" and user.new_netns and user.can_publish


@pytest.mark.parametrize("bad", ["container:", "-x", "a b", "x" * 200])
def test_bad_modes(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        plan_network_mode(bad)
