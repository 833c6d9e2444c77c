"""The demo's world on disk: which chips a co-located landmark reaches over its own link."""

from pathlib import Path

from landmark_node.config import load_landmark_config
from lightfence.demo.scenario import full_scenario
from lightfence.demo.world import build_world


def test_a_colocated_landmark_links_only_to_the_hosts_in_its_own_data_centre(
    tmp_path: Path,
) -> None:
    world = build_world(full_scenario(), tmp_path, 8080, fast=False)
    hosts = {chip.chip_id: agent for agent in world.agents for chip in agent.chips}
    nodes = {node.spec.landmark_id: node for node in world.landmarks}

    def linked(landmark_id: str) -> dict[str, str]:
        cfg = load_landmark_config(nodes[landmark_id].config_path)
        return {link.public: link.local for link in cfg.cross_connects}

    cyberjaya = linked("lm-cyberjaya-dc")
    for honest in ("gpu-kul-01", "gpu-kul-02"):
        assert cyberjaya[hosts[honest].front_host] == hosts[honest].bind_host
    # The smuggled chip declares Cyberjaya but answers through a relay host: the landmark
    # reaches it only over the emulated network, which carries the real distance.
    assert hosts["gpu-kul-03"].front_host not in cyberjaya
    assert len(cyberjaya) == 1  # kul-01 and kul-02 share one host
    # Metro landmarks have no cross-connect at all.
    assert linked("lm-kualalumpur") == {} and linked("lm-frankfurt") == {}
