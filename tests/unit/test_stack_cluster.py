"""Pure parts of the local multi-broker cluster (devkit/stack/cluster.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from devkit.stack import cluster
from devkit.stack.layout import StackLayout
from vidloc.adapters.kafka.admin import topic_configs
from vidloc.errors import StackError
from vidloc.settings import Settings

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = (REPO / "infra" / "kafka" / "server.properties.template").read_text()
LAYOUT = StackLayout(stack_dir=Path("/stack"), cache_dir=Path("/cache"))
SETTINGS = Settings(kafka_port=39092, kafka_controller_port=39093)


def _props(text: str) -> dict[str, str]:
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_three_nodes_get_their_own_ports_files_and_one_static_quorum() -> None:
    nodes = cluster.nodes(SETTINGS, LAYOUT, 3)
    assert [(n.client_port, n.controller_port) for n in nodes] == [
        (39092, 39093),
        (39102, 39103),
        (39112, 39113),
    ]
    # Node 1 keeps the single broker's files, so `down` of an older stack still finds it.
    assert nodes[0].component == "kafka" and nodes[0].data_dir == LAYOUT.kafka_data
    assert nodes[2].data_dir == Path("/stack/kafka-3-data")
    props = [_props(cluster.render(TEMPLATE, SETTINGS, LAYOUT, nodes, n)) for n in nodes]
    voters = "1@127.0.0.1:39093,2@127.0.0.1:39103,3@127.0.0.1:39113"
    for node, p in zip(nodes, props, strict=True):
        assert p["node.id"] == str(node.node_id)
        assert p["controller.quorum.voters"] == voters
        assert "controller.quorum.bootstrap.servers" not in p
        assert p["listeners"] == p["advertised.listeners"]
        assert f":{node.client_port}," in p["listeners"]
        assert p["log.dirs"] == str(node.data_dir)


def test_a_three_node_cluster_replicates_everything_three_times_two_in_sync() -> None:
    nodes = cluster.nodes(SETTINGS, LAYOUT, 3)
    p = _props(cluster.render(TEMPLATE, SETTINGS, LAYOUT, nodes, nodes[1]))
    assert p["default.replication.factor"] == "3"
    assert p["offsets.topic.replication.factor"] == "3"
    assert p["transaction.state.log.replication.factor"] == "3"
    assert p["transaction.state.log.min.isr"] == "2"
    assert p["min.insync.replicas"] == "2"
    assert p["unclean.leader.election.enable"] == "false"
    assert topic_configs(3) == {
        "min.insync.replicas": "2",
        "unclean.leader.election.enable": "false",
    }
    assert topic_configs(1)["min.insync.replicas"] == "1"


def test_node_heap_is_small_and_each_node_carries_its_marker() -> None:
    nodes = cluster.nodes(SETTINGS, LAYOUT, 3)
    argv = cluster.server_argv(LAYOUT, "/usr/bin/java", nodes[1])
    assert "-Xmx256m" in argv and not any(a == "-Xmx384m" for a in argv)
    assert argv[-2:] == ["kafka.Kafka", str(nodes[1].config)]
    assert all(m in " ".join(argv) for m in cluster.markers(LAYOUT, nodes[1]))
    assert cluster.markers(LAYOUT, nodes[0]) == ("kafka.Kafka", "-Ddevkit.stack.dir=/stack")


def test_a_stack_dir_keeps_the_broker_count_it_was_formatted_for(tmp_path: Path) -> None:
    layout = StackLayout(stack_dir=tmp_path, cache_dir=tmp_path / "cache")
    assert cluster.choose(layout, None) == 1
    cluster.record(layout, 3)
    assert cluster.choose(layout, None) == 3
    layout.kafka_data.mkdir(parents=True)
    (layout.kafka_data / "meta.properties").write_text("cluster.id=abc\n")
    assert cluster.choose(layout, 3) == 3
    with pytest.raises(StackError, match="3-broker cluster"):
        cluster.choose(layout, 1)


def test_override_replaces_drops_and_appends_keys_and_leaves_the_rest() -> None:
    text = "# c\na=1\nb=2\n\nc=3\n"
    assert cluster.override(text, {"a": "9", "b": None, "d": "4"}).splitlines()[:4] == [
        "# c",
        "a=9",
        "",
        "c=3",
    ]
    assert cluster.override(text, {"d": "4"}).rstrip().endswith("d=4")
