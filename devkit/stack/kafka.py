"""The local Kafka broker: jars from Maven Central, a KRaft config, one JVM, the vidloc topics."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from string import Template

from devkit.stack.layout import StackLayout
from devkit.stack.processes import port_open
from vidloc.adapters.kafka.admin import broker_topics, live_brokers
from vidloc.adapters.kafka.admin import ensure_topics as create_vidloc_topics
from vidloc.errors import BusUnavailable, StackError
from vidloc.settings import Settings

# The topics and their partition counts are the product's: `vidloc init` in a deployment creates
# the same ones.
log = logging.getLogger(__name__)

COMPONENT = "kafka"
HOST = "127.0.0.1"
# A broker with 384 MiB heap is plenty for tests and keeps the shared 2-core box responsive.
JVM_OPTS = ("-Xmx384m", "-Xms128m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20")
_STAMP = ".pom-sha256"
# The optional client listener with SASL/PLAIN (Settings.stack_kafka_sasl_port).
SASL_LISTENER = "SASL_PLAINTEXT"
_SASL_NAME = re.compile(r"[A-Za-z0-9._-]+")
_SASL_PASSWORD = re.compile(r"[ !#-\[\]-~]+")  # printable ASCII except " and \


def markers(layout: StackLayout) -> tuple[str, ...]:
    """What must be on the broker's command line for `down` to believe it started it."""
    return ("kafka.Kafka", f"-Ddevkit.stack.dir={layout.stack_dir}")


def ports(settings: Settings) -> tuple[int, ...]:
    """Every port the broker listens on: clients, controller, and SASL clients when enabled."""
    fixed = (settings.kafka_port, settings.kafka_controller_port)
    sasl = settings.stack_kafka_sasl_port
    return fixed if sasl is None else (*fixed, sasl)


def require_java() -> str:
    java = shutil.which("java")
    if java is None:
        raise StackError(
            "java not found: Kafka 4 needs a Java 17+ runtime "
            "(Debian: apt-get install openjdk-17-jre-headless)"
        )
    return java


def ensure_jars(layout: StackLayout) -> bool:
    """Copy Kafka and its runtime jars into the cache once per pom; True if it downloaded."""
    pom_hash = hashlib.sha256(layout.kafka_pom.read_bytes()).hexdigest()
    stamp = layout.kafka_libs / _STAMP
    if stamp.is_file() and stamp.read_text().strip() == pom_hash:
        return False
    mvn = shutil.which("mvn")
    if mvn is None:
        raise StackError(
            "mvn not found: the Kafka jars are fetched with Maven (Debian: apt-get install maven)"
        )
    # Download beside the cache and swap in whole, so an interrupted fetch never looks complete.
    staging = layout.kafka_libs.with_name(layout.kafka_libs.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [
        mvn,
        "-q",
        "-B",
        "-f",
        str(layout.kafka_pom),
        "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
    ]
    log.info("fetching Kafka jars: %s", " ".join(cmd))
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=900)
    except subprocess.CalledProcessError as exc:
        raise StackError(f"mvn could not fetch the Kafka jars:\n{exc.stdout}{exc.stderr}") from exc
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StackError(f"mvn could not fetch the Kafka jars: {exc}") from exc
    (staging / _STAMP).write_text(pom_hash + "\n")
    shutil.rmtree(layout.kafka_libs, ignore_errors=True)
    staging.rename(layout.kafka_libs)
    return True


def _sasl_user(settings: Settings) -> tuple[str, str]:
    """The one SASL/PLAIN user of the local broker, refused if it cannot be written safely.

    The name becomes a JAAS option name (``user_<name>``) and the password a quoted JAAS
    value in a properties file that Java reads as ISO-8859-1, so both stay plain ASCII.
    """
    username = settings.kafka_sasl_username
    password = settings.kafka_sasl_password
    if not username or password is None or not password.get_secret_value():
        raise StackError(
            "VIDLOC_STACK_KAFKA_SASL_PORT needs VIDLOC_KAFKA_SASL_USERNAME and"
            " VIDLOC_KAFKA_SASL_PASSWORD: the SASL listener accepts that one user"
        )
    if not _SASL_NAME.fullmatch(username):
        raise StackError(
            "VIDLOC_KAFKA_SASL_USERNAME for the local stack must match [A-Za-z0-9._-]+"
        )
    secret = password.get_secret_value()
    if not _SASL_PASSWORD.fullmatch(secret):
        # Never echo the value: this message reaches the terminal and the logs.
        raise StackError(
            'VIDLOC_KAFKA_SASL_PASSWORD for the local stack must be printable ASCII without " or \\'
        )
    return username, secret


def _sasl_properties(settings: Settings) -> dict[str, str]:
    """Template values for the optional SASL_PLAINTEXT listener; all empty when it is off."""
    port = settings.stack_kafka_sasl_port
    if port is None:
        return {"sasl_listener": "", "sasl_protocol": "", "sasl_block": ""}
    username, password = _sasl_user(settings)
    name = SASL_LISTENER
    # Inter-broker and controller traffic stay on PLAINTEXT, so the broker never logs in
    # itself: the login module needs only the accepted user, no username=/password= pair.
    block = (
        "\n# SASL/PLAIN listener for clients (VIDLOC_STACK_KAFKA_SASL_PORT), one user.\n"
        "sasl.enabled.mechanisms=PLAIN\n"
        f"listener.name.{name.lower()}.plain.sasl.jaas.config="
        "org.apache.kafka.common.security.plain.PlainLoginModule required"
        f' user_{username}="{password}";\n'
    )
    return {
        "sasl_listener": f",{name}://{HOST}:{port}",
        "sasl_protocol": f",{name}:SASL_PLAINTEXT",
        "sasl_block": block,
    }


def render_server_properties(template: str, settings: Settings, layout: StackLayout) -> str:
    sasl = _sasl_properties(settings)
    try:
        text = Template(template).substitute(
            kafka_port=settings.kafka_port,
            controller_port=settings.kafka_controller_port,
            log_dirs=str(layout.kafka_data),
            message_max_bytes=settings.max_message_bytes,
            sasl_listener=sasl["sasl_listener"],
            sasl_protocol=sasl["sasl_protocol"],
        )
    except (KeyError, ValueError) as exc:
        raise StackError(f"bad placeholder in {layout.kafka_template}: {exc}") from exc
    return text + sasl["sasl_block"]


def write_config(settings: Settings, layout: StackLayout) -> None:
    text = render_server_properties(layout.kafka_template.read_text(), settings, layout)
    layout.kafka_config.parent.mkdir(parents=True, exist_ok=True)
    # The file may hold the SASL user's password: readable by its owner only.
    layout.kafka_config.touch(mode=0o600)
    layout.kafka_config.chmod(0o600)
    layout.kafka_config.write_text(text)


def new_cluster_id(random_bytes: Callable[[], bytes] = lambda: uuid.uuid4().bytes) -> str:
    """Kafka's cluster id format: 16 random bytes, URL-safe base64 without padding.

    Like Kafka's own ``Uuid.randomUuid``, never one starting with ``-``: StorageTool's argument
    parser would read ``-t -abc...`` as an unknown option and refuse to format (1 in 64 ids).
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(random_bytes()).rstrip(b"=").decode()
        if not cluster_id.startswith("-"):
            return cluster_id


def _classpath(layout: StackLayout) -> str:
    return f"{layout.kafka_libs}/*"


def _log4j_flag(layout: StackLayout) -> str:
    return f"-Dlog4j2.configurationFile={layout.kafka_log4j}"


def ensure_formatted(layout: StackLayout, java: str) -> bool:
    """Format the KRaft log dir on first start only; a restart must keep the data."""
    if (layout.kafka_data / "meta.properties").is_file():
        return False
    layout.kafka_data.mkdir(parents=True, exist_ok=True)
    cmd = [
        java,
        _log4j_flag(layout),
        "-cp",
        _classpath(layout),
        "kafka.tools.StorageTool",
        "format",
        "--standalone",
        "-t",
        new_cluster_id(),
        "-c",
        str(layout.kafka_config),
    ]
    log_file = layout.log_file(COMPONENT)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        try:
            subprocess.run(cmd, check=True, stdout=out, stderr=subprocess.STDOUT, timeout=120)
        except (OSError, subprocess.SubprocessError) as exc:
            raise StackError(f"kafka storage format failed ({exc}); see {log_file}") from exc
    return True


def server_argv(layout: StackLayout, java: str) -> list[str]:
    return [
        java,
        *JVM_OPTS,
        "-Djava.awt.headless=true",
        f"-Ddevkit.stack.dir={layout.stack_dir}",
        _log4j_flag(layout),
        "-cp",
        _classpath(layout),
        "kafka.Kafka",
        str(layout.kafka_config),
    ]


def wait_ready(
    settings: Settings,
    timeout_s: float,
    alive: Callable[[], bool],
    *,
    bootstrap: str | None = None,
) -> None:
    """Block until a metadata request succeeds; fail fast if the broker process died."""
    where = bootstrap or f"{HOST}:{settings.kafka_port}"
    host, _, port = where.rpartition(":")
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        if not alive():
            raise StackError("the Kafka broker exited during start-up")
        # Probe the port first: kafka-python logs loudly for every refused connection.
        if port_open(host, int(port)):
            try:
                broker_topics(settings, bootstrap=where)
                return
            except BusUnavailable as exc:
                last = exc
        time.sleep(0.5)
    raise StackError(
        f"Kafka did not answer on {where} within {timeout_s:.0f} s (last error: {last})"
    )


def wait_brokers(settings: Settings, bootstrap: str, count: int, timeout_s: float) -> None:
    """Block until the cluster's metadata lists ``count`` brokers (every node registered)."""
    deadline = time.monotonic() + timeout_s
    seen: int | str = "no answer"
    while time.monotonic() < deadline:
        try:
            seen = live_brokers(settings, bootstrap=bootstrap)
        except BusUnavailable as exc:
            seen = str(exc)
        if seen == count:
            return
        time.sleep(0.5)
    raise StackError(f"the cluster at {bootstrap} did not list {count} brokers: {seen}")


def ensure_topics(
    settings: Settings, *, bootstrap: str | None = None, replication: int = 1
) -> list[str]:
    """Create the vidloc topics that are missing; return the names it created."""
    try:
        return create_vidloc_topics(
            settings,
            bootstrap=bootstrap or f"{HOST}:{settings.kafka_port}",
            replication=replication,
        )
    except BusUnavailable as exc:
        raise StackError(f"could not create Kafka topics: {exc}") from exc
