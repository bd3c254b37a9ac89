"""A local Kafka cluster of KRaft nodes from the same jars (``vidloc stack up --brokers 3``).

Each node is broker and controller at once, on its own ports, data dir, config, pid and log.
Node 1 keeps the single broker's files and ports (``kafka_port``, ``kafka_controller_port``);
node *i* listens ``10 x (i - 1)`` above them. The quorum is static (``controller.quorum.voters``
names every node) and every node is formatted with one cluster id: a three-node quorum survives
one node down, which is what the fault tests kill. On a cluster of three or more, the internal
topics (consumer offsets, transaction state) and vidloc's topics get replication factor 3 and
``min.insync.replicas`` 2, and unclean leader election stays off: an acked record survives any
one broker, and no out-of-sync replica ever becomes a leader.

The node count of a stack dir is recorded beside its data (``kafka/brokers``), so a later ``up``,
``down`` or ``status`` without ``--brokers`` acts on every node, and ``up`` starts again only
the nodes that are down.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from devkit.stack import kafka
from devkit.stack.layout import StackLayout
from vidloc.adapters.kafka.admin import topic_configs
from vidloc.errors import StackError
from vidloc.settings import Settings

PORT_STEP = 10
# Three JVMs share the 2-core box with other developers: a smaller heap than the single broker's.
NODE_HEAP = "-Xmx256m"
MAX_BROKERS = 5
_RECORD = "brokers"


@dataclass(frozen=True)
class Node:
    """One KRaft node of the local cluster: broker and controller."""

    node_id: int
    client_port: int
    controller_port: int
    component: str  # "kafka" for node 1 (the single broker's files), "kafka-<id>" after
    data_dir: Path
    config: Path

    @property
    def bootstrap(self) -> str:
        return f"{kafka.HOST}:{self.client_port}"


def nodes(settings: Settings, layout: StackLayout, brokers: int) -> list[Node]:
    if not 1 <= brokers <= MAX_BROKERS:
        raise StackError(f"--brokers must be between 1 and {MAX_BROKERS}, not {brokers}")
    out = []
    for node_id in range(1, brokers + 1):
        step = PORT_STEP * (node_id - 1)
        first = node_id == 1
        component = kafka.COMPONENT if first else f"{kafka.COMPONENT}-{node_id}"
        out.append(
            Node(
                node_id=node_id,
                client_port=settings.kafka_port + step,
                controller_port=settings.kafka_controller_port + step,
                component=component,
                data_dir=layout.kafka_data if first else layout.stack_dir / f"{component}-data",
                config=layout.kafka_config
                if first
                else layout.stack_dir / component / "server.properties",
            )
        )
    return out


def replication(brokers: int) -> int:
    """Replicas per partition: 3 where there are three brokers, else one per broker."""
    return min(brokers, 3)


def bootstrap(cluster: list[Node]) -> str:
    return ",".join(node.bootstrap for node in cluster)


def markers(layout: StackLayout, node: Node) -> tuple[str, ...]:
    """Node 1 keeps the single broker's markers (a stack started before clusters existed is
    still recognised); the others add their node id."""
    base = kafka.markers(layout)
    return base if node.node_id == 1 else (*base, f"-Ddevkit.stack.node={node.node_id}")


def properties(cluster: list[Node], node: Node) -> dict[str, str | None]:
    """What a node of ``cluster`` sets over the single-broker template (None: drop the key)."""
    voters = ",".join(f"{n.node_id}@{kafka.HOST}:{n.controller_port}" for n in cluster)
    replicas = replication(len(cluster))
    isr = topic_configs(replicas)["min.insync.replicas"]
    listeners = f"PLAINTEXT://{kafka.HOST}:{node.client_port},CONTROLLER://{kafka.HOST}:{node.controller_port}"
    return {
        "node.id": str(node.node_id),
        "controller.quorum.bootstrap.servers": None,
        "controller.quorum.voters": voters,
        "listeners": listeners,
        "advertised.listeners": listeners,
        "log.dirs": str(node.data_dir),
        "default.replication.factor": str(replicas),
        "min.insync.replicas": isr,
        "offsets.topic.replication.factor": str(replicas),
        "transaction.state.log.replication.factor": str(replicas),
        "transaction.state.log.min.isr": isr,
        "share.coordinator.state.topic.replication.factor": str(replicas),
        "share.coordinator.state.topic.min.isr": isr,
        "unclean.leader.election.enable": "false",
        # Per-test topics the stack does not create get the same durability.
        "auto.create.topics.enable": "true",
    }


def override(text: str, values: dict[str, str | None]) -> str:
    """``text`` (a .properties file) with each key set to its value, dropped when None, and
    appended when absent. Comments and every other line stay as they are."""
    pending = dict(values)
    lines = []
    for line in text.splitlines():
        key = line.split("=", 1)[0].strip() if "=" in line and not line.startswith("#") else None
        if key is not None and key in pending:
            value = pending.pop(key)
            if value is not None:
                lines.append(f"{key}={value}")
            continue
        lines.append(line)
    added = [f"{k}={v}" for k, v in pending.items() if v is not None]
    if added:
        lines += ["", "# A node of a local multi-broker cluster (devkit/stack/cluster.py).", *added]
    return "\n".join(lines) + "\n"


def render(
    template: str, settings: Settings, layout: StackLayout, cluster: list[Node], node: Node
) -> str:
    if settings.stack_kafka_sasl_port is not None:
        raise StackError("the SASL listener is for the single-broker stack only (--brokers 1)")
    return override(
        kafka.render_server_properties(template, settings, layout), properties(cluster, node)
    )


def write_config(settings: Settings, layout: StackLayout, cluster: list[Node], node: Node) -> None:
    text = render(layout.kafka_template.read_text(), settings, layout, cluster, node)
    node.config.parent.mkdir(parents=True, exist_ok=True)
    node.config.write_text(text)


def recorded(layout: StackLayout) -> int | None:
    """The node count this stack dir was formatted for, or None before its first start."""
    try:
        return int((layout.kafka_config.parent / _RECORD).read_text().strip())
    except (OSError, ValueError):
        return None


def record(layout: StackLayout, brokers: int) -> None:
    path = layout.kafka_config.parent / _RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{brokers}\n")


def choose(layout: StackLayout, asked: int | None) -> int:
    """The node count to act on: what was asked, else what the stack dir holds, else 1.

    A stack dir formatted for one count cannot become another (the quorum is in its data).
    """
    known = recorded(layout)
    if asked is None:
        return known or 1
    formatted = (layout.kafka_data / "meta.properties").is_file()
    if formatted and (known or 1) != asked:
        raise StackError(
            f"{layout.stack_dir} holds a {known or 1}-broker cluster; stop it (`down`) and remove"
            f" the directory, or choose another VIDLOC_STACK_DIR, for --brokers {asked}"
        )
    return asked


def ensure_formatted(layout: StackLayout, java: str, node: Node, cluster_id: str) -> bool:
    """Format a node's log dir once, with the cluster's one id (a static quorum: no
    ``--standalone``, the voters come from the config)."""
    if (node.data_dir / "meta.properties").is_file():
        return False
    node.data_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        java,
        f"-Dlog4j2.configurationFile={layout.kafka_log4j}",
        "-cp",
        f"{layout.kafka_libs}/*",
        "kafka.tools.StorageTool",
        "format",
        "-t",
        cluster_id,
        "-c",
        str(node.config),
    ]
    log_file = layout.log_file(node.component)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        try:
            subprocess.run(cmd, check=True, stdout=out, stderr=subprocess.STDOUT, timeout=120)
        except (OSError, subprocess.SubprocessError) as exc:
            raise StackError(
                f"kafka storage format of node {node.node_id} failed ({exc}); see {log_file}"
            ) from exc
    return True


def cluster_id(layout: StackLayout, cluster: list[Node]) -> str:
    """The id every node is formatted with: read back from a formatted node, else new."""
    for node in cluster:
        meta = node.data_dir / "meta.properties"
        if meta.is_file():
            for line in meta.read_text().splitlines():
                if line.startswith("cluster.id="):
                    return line.split("=", 1)[1].strip()
    return kafka.new_cluster_id()


def server_argv(layout: StackLayout, java: str, node: Node) -> list[str]:
    argv = kafka.server_argv(layout, java)
    # The JVM options go before the main class; the node's marker and config replace the
    # single broker's.
    main = argv.index("kafka.Kafka")
    extra = [] if node.node_id == 1 else [f"-Ddevkit.stack.node={node.node_id}"]
    head = [NODE_HEAP if arg.startswith("-Xmx") else arg for arg in argv[: main - 2]]
    return [*head, *extra, *argv[main - 2 : main + 1], str(node.config)]
