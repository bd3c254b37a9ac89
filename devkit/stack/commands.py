"""`vidloc stack up|down|status|logs [component]`: the one command that manages the local stack."""

from __future__ import annotations

import fcntl
import functools
import logging
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from devkit.stack import cluster, kafka, s3
from devkit.stack.layout import StackLayout
from devkit.stack.processes import (
    child_alive,
    kill_group,
    owns,
    port_open,
    running_pid,
    spawn_detached,
    stop,
    tail,
    write_pid,
)
from vidloc.errors import StackError
from vidloc.settings import Settings

log = logging.getLogger(__name__)

ACTIONS = ("up", "down", "status", "logs", "init")
# Start order; `down` goes the other way. versitygw must find Kafka and s3.events at start-up,
# because it sends a test event there and exits if that fails.
COMPONENTS = (kafka.COMPONENT, s3.COMPONENT)
KAFKA_READY_S = 120.0
S3_READY_S = 30.0


@dataclass(frozen=True)
class _Component:
    name: str
    ports: tuple[int, ...]
    markers: tuple[str, ...]
    ready: Callable[[float, Callable[[], bool]], None]


def _components(settings: Settings, layout: StackLayout) -> dict[str, _Component]:
    return {
        kafka.COMPONENT: _Component(
            kafka.COMPONENT,
            kafka.ports(settings),
            kafka.markers(layout),
            lambda t, alive: kafka.wait_ready(settings, t, alive),
        ),
        s3.COMPONENT: _Component(
            s3.COMPONENT,
            (settings.s3_port,),
            s3.markers(layout),
            lambda t, alive: s3.wait_ready(settings, t, alive),
        ),
    }


def _say(message: str) -> None:
    print(message, flush=True)


@contextmanager
def _locked(layout: StackLayout) -> Iterator[None]:
    """Serialise up/down so two developers' `make test` cannot start two brokers."""
    layout.stack_dir.mkdir(parents=True, exist_ok=True)
    with (layout.stack_dir / "stack.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _refuse_taken_ports(comp: _Component) -> None:
    taken = [p for p in comp.ports if port_open(kafka.HOST, p)]
    if taken:
        raise StackError(
            f"{comp.name}: port(s) {', '.join(map(str, taken))} on {kafka.HOST} already taken by a"
            " process this stack did not start; stop it or choose other ports (VIDLOC_KAFKA_PORT,"
            " VIDLOC_KAFKA_CONTROLLER_PORT, VIDLOC_STACK_KAFKA_SASL_PORT, VIDLOC_S3_PORT)"
        )


def _launch(
    comp: _Component, argv: list[str], layout: StackLayout, env: dict[str, str] | None = None
) -> None:
    log_file = layout.log_file(comp.name)
    started = time.monotonic()
    pid = spawn_detached(argv, log_file, env=env)
    write_pid(layout.pid_file(comp.name), pid)
    _say(f"{comp.name}: started pid {pid}, waiting for it to answer (log: {log_file})")
    timeout = KAFKA_READY_S if comp.name == kafka.COMPONENT else S3_READY_S
    try:
        # Our own child, asked with waitpid: its command line would race the exec.
        comp.ready(timeout, lambda: child_alive(pid))
    except StackError as exc:
        # A half-started service would hold its ports and block every later `up`: kill its
        # whole group, and keep the pid recorded (for `down`) if anything of it survived.
        if kill_group(pid, grace_s=5):
            layout.pid_file(comp.name).unlink(missing_ok=True)
        else:
            log.error("%s: pid %d survived SIGKILL; its pid file stays", comp.name, pid)
        raise StackError(
            f"{comp.name}: failed to start: {exc}\n--- last lines of {log_file} ---\n"
            f"{tail(log_file, 20)}"
        ) from exc
    _say(f"{comp.name}: ready after {time.monotonic() - started:.1f} s")


def _up_kafka(settings: Settings, layout: StackLayout, comp: _Component) -> None:
    pid = running_pid(layout.pid_file(comp.name), comp.markers)
    if pid is None:
        _refuse_taken_ports(comp)
        java = kafka.require_java()
        if kafka.ensure_jars(layout):
            _say(f"kafka: fetched the jars into {layout.kafka_libs}")
        kafka.write_config(settings, layout)
        if kafka.ensure_formatted(layout, java):
            _say(f"kafka: formatted a new KRaft log dir at {layout.kafka_data}")
        _launch(comp, kafka.server_argv(layout, java), layout)
    else:
        _say(f"kafka: already running (pid {pid})")
        comp.ready(KAFKA_READY_S, lambda: owns(pid, comp.markers))
    created = kafka.ensure_topics(settings)
    if created:
        _say(f"kafka: created topics {', '.join(created)}")


def _up_s3(settings: Settings, layout: StackLayout, comp: _Component) -> None:
    pid = running_pid(layout.pid_file(comp.name), comp.markers)
    if pid is None:
        _refuse_taken_ports(comp)
        if s3.ensure_binary(layout):
            _say(f"s3: built versitygw {s3.VERSITYGW_VERSION} into {layout.versitygw_bin}")
        if not port_open(kafka.HOST, settings.kafka_port):
            raise StackError("s3: versitygw needs Kafka for its notifications; run `up kafka`")
        layout.s3_data.mkdir(parents=True, exist_ok=True)
        _launch(comp, s3.server_argv(settings, layout), layout, env=s3.server_env(settings))
    else:
        _say(f"s3: already running (pid {pid})")
        comp.ready(S3_READY_S, lambda: owns(pid, comp.markers))
    created = s3.ensure_buckets(settings)
    if created:
        _say(f"s3: created buckets {', '.join(created)}")


def _node_component(settings: Settings, layout: StackLayout, node: cluster.Node) -> _Component:
    def ready(timeout_s: float, alive: Callable[[], bool]) -> None:
        kafka.wait_ready(settings, timeout_s, alive, bootstrap=node.bootstrap)

    return _Component(
        node.component,
        (node.client_port, node.controller_port),
        cluster.markers(layout, node),
        ready,
    )


def _up_cluster(settings: Settings, layout: StackLayout, brokers: int) -> None:
    """Start every node of the cluster that is not running (all of them, or the one a test
    killed), wait until each answers and the metadata lists them all, then create the topics."""
    nodes = cluster.nodes(settings, layout, brokers)
    java = kafka.require_java()
    if kafka.ensure_jars(layout):
        _say(f"kafka: fetched the jars into {layout.kafka_libs}")
    cluster_id = cluster.cluster_id(layout, nodes)
    alive: dict[str, Callable[[], bool]] = {}
    for node in nodes:
        comp = _node_component(settings, layout, node)
        pid = running_pid(layout.pid_file(comp.name), comp.markers)
        if pid is not None:
            _say(f"{comp.name}: already running (pid {pid})")
            alive[comp.name] = functools.partial(owns, pid, comp.markers)
            continue
        _refuse_taken_ports(comp)
        cluster.write_config(settings, layout, nodes, node)
        if cluster.ensure_formatted(layout, java, node, cluster_id):
            _say(f"{comp.name}: formatted a new KRaft log dir at {node.data_dir}")
        # Every node is spawned before any is waited for: a static quorum elects its
        # controller only once a majority of the voters runs.
        pid = spawn_detached(cluster.server_argv(layout, java, node), layout.log_file(comp.name))
        write_pid(layout.pid_file(comp.name), pid)
        _say(f"{comp.name}: started pid {pid} (log: {layout.log_file(comp.name)})")
        alive[comp.name] = functools.partial(child_alive, pid)
    cluster.record(layout, brokers)
    started = time.monotonic()
    for node in nodes:
        comp = _node_component(settings, layout, node)
        try:
            comp.ready(KAFKA_READY_S, alive[comp.name])
        except StackError as exc:
            raise StackError(
                f"{comp.name}: did not answer: {exc}\n--- last lines of"
                f" {layout.log_file(comp.name)} ---\n{tail(layout.log_file(comp.name), 20)}"
            ) from exc
    kafka.wait_brokers(settings, cluster.bootstrap(nodes), brokers, KAFKA_READY_S)
    _say(f"kafka: {brokers} brokers ready after {time.monotonic() - started:.1f} s")
    created = kafka.ensure_topics(
        settings, bootstrap=cluster.bootstrap(nodes), replication=cluster.replication(brokers)
    )
    if created:
        _say(f"kafka: created topics {', '.join(created)}")


def _up(
    settings: Settings, layout: StackLayout, selected: list[str], brokers: int | None = None
) -> None:
    comps = _components(settings, layout)
    started = time.monotonic()
    where = settings.kafka_bootstrap
    with _locked(layout):
        for name in selected:
            if name == kafka.COMPONENT:
                count = cluster.choose(layout, brokers)
                if count == 1:
                    _up_kafka(settings, layout, comps[name])
                else:
                    _up_cluster(settings, layout, count)
                    where = cluster.bootstrap(cluster.nodes(settings, layout, count))
            else:
                _up_s3(settings, layout, comps[name])
    _say(
        f"stack up in {time.monotonic() - started:.1f} s: Kafka {where},"
        f" S3 {settings.s3_endpoint}; logs in {layout.logs_dir}"
    )


def _kafka_nodes(settings: Settings, layout: StackLayout) -> list[_Component]:
    """The Kafka components of this stack dir: the single broker, or every node of a cluster."""
    count = cluster.choose(layout, None)
    if count == 1:
        return [_components(settings, layout)[kafka.COMPONENT]]
    return [_node_component(settings, layout, n) for n in cluster.nodes(settings, layout, count)]


def _expand(settings: Settings, layout: StackLayout, selected: list[str]) -> list[_Component]:
    comps = _components(settings, layout)
    out: list[_Component] = []
    for name in selected:
        out += _kafka_nodes(settings, layout) if name == kafka.COMPONENT else [comps[name]]
    return out


def _down(settings: Settings, layout: StackLayout, selected: list[str]) -> None:
    def stop_one(comp: _Component) -> None:
        name, pid_file = comp.name, layout.pid_file(comp.name)
        pid = running_pid(pid_file, comp.markers)
        if pid is None:
            _say(f"{name}: not running (nothing started by this stack)")
        else:
            _say(f"{name}: stopping pid {pid}")
            stop(pid, comp.markers)
        pid_file.unlink(missing_ok=True)

    with _locked(layout):
        for name in reversed(selected):
            comps = _expand(settings, layout, [name])
            # A cluster's nodes stop together: the last one alone would wait out its
            # controlled shutdown for a quorum that is already gone (30 s, then SIGKILL).
            with ThreadPoolExecutor(max_workers=len(comps)) as pool:
                list(pool.map(stop_one, comps))


def _status(settings: Settings, layout: StackLayout, selected: list[str]) -> bool:
    """Print each component's state; True when every selected one answers."""
    all_ready = True
    for comp in _expand(settings, layout, selected):
        name = comp.name
        pid = running_pid(layout.pid_file(name), comp.markers)
        try:
            comp.ready(3.0, lambda: True)
            ready = True
        except StackError:
            ready = False
        all_ready = all_ready and ready
        owner = f"pid {pid}" if pid is not None else "not started by this stack"
        if pid is None and not ready:
            state = "stopped"
        else:
            state = f"{'ready' if ready else 'NOT answering'} ({owner})"
        _say(f"{name}: {state}; ports {comp.ports}; log {layout.log_file(name)}")
    return all_ready


def _logs(settings: Settings, layout: StackLayout, selected: list[str]) -> None:
    for comp in _expand(settings, layout, selected):
        log_file = layout.log_file(comp.name)
        _say(f"==> {log_file} <==\n{tail(log_file, 40)}")


def stack_command(
    action: str, settings: Settings, component: str | None = None, *, brokers: int | None = None
) -> int:
    """Run one stack action; 0 on success, 1 on failure (the reason is printed to stderr).

    ``brokers`` (``up`` only): how many Kafka nodes; by default what the stack dir was first
    started with, else 1 (devkit/stack/cluster.py).
    """
    if action not in ACTIONS:
        print(
            f"unknown stack action {action!r}; expected one of {', '.join(ACTIONS)}",
            file=sys.stderr,
        )
        return 2
    if component is not None and component not in COMPONENTS:
        print(
            f"unknown component {component!r}; expected one of {', '.join(COMPONENTS)}",
            file=sys.stderr,
        )
        return 2
    if action == "init":  # topics and buckets on services this stack did not start
        from devkit.stack.init import init_command

        return init_command(settings)
    selected = list(COMPONENTS) if component is None else [component]
    layout = StackLayout.from_settings(settings)
    try:
        if action == "up":
            _up(settings, layout, selected, brokers)
        elif action == "down":
            _down(settings, layout, selected)
        elif action == "status":
            return 0 if _status(settings, layout, selected) else 1
        else:
            _logs(settings, layout, selected)
    except StackError as exc:
        print(f"stack {action} failed: {exc}", file=sys.stderr)
        return 1
    return 0
