"""docker-compose.yml and the Dockerfile, checked without a Docker engine.

The compose file is validated against the Compose Specification's JSON Schema (the copy that
docker-compose 1.29.2 ships as ``compose/config/compose_spec.json``, kept verbatim in
tests/data/compose-spec.json), and every service's environment against what vidloc actually
reads: ``vidloc.settings.Settings``. Commands are parsed by vidloc's own CLI parser.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import jsonschema
import pytest
import yaml

from vidloc.cli import app as cli_app
from vidloc.cli import build_parser
from vidloc.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "docker-compose.yml"
SCHEMA = REPO / "tests" / "data" / "compose-spec.json"
VIDLOC_SERVICES = ("init", "bridge", "worker", "api", "deliverer")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def load_yaml(path: Path) -> dict[str, Any]:
    with path.open() as fh:
        doc: dict[str, Any] = yaml.safe_load(fh)
    return doc


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft201909Validator:
    with SCHEMA.open() as fh:
        schema = json.load(fh)
    jsonschema.Draft201909Validator.check_schema(schema)
    return jsonschema.Draft201909Validator(schema)


def interpolate(value: Any, env: Mapping[str, str]) -> str:
    """Compose's ``${VAR}`` / ``${VAR:-default}`` substitution, as `docker compose` does it."""
    return _VAR.sub(lambda m: env.get(m.group(1)) or (m.group(2) or ""), str(value))


def env_of(service: Mapping[str, Any]) -> dict[str, Any]:
    environment = service.get("environment") or {}
    assert isinstance(environment, dict), "environments are written as mappings"
    return environment


def setting_env_names() -> set[str]:
    return {f"VIDLOC_{name.upper()}" for name in Settings.model_fields}


def walk_strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from walk_strings(key)
            yield from walk_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk_strings(item)


def settings_for(
    service: Mapping[str, Any], host_env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """The Settings a container of ``service`` would load, given the host's environment."""
    for name in setting_env_names():
        monkeypatch.delenv(name, raising=False)
    for name, value in env_of(service).items():
        monkeypatch.setenv(name, interpolate(value, host_env))
    return load_settings()


# --- the compose file --------------------------------------------------------------------


def test_compose_file_matches_the_compose_specification(
    compose: dict[str, Any], validator: jsonschema.Draft201909Validator
) -> None:
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_the_schema_is_strict_enough_to_catch_mistakes(
    compose: dict[str, Any], validator: jsonschema.Draft201909Validator
) -> None:
    broken = json.loads(json.dumps(compose))
    broken["services"]["worker"]["deploy"]["replicas"] = "two"
    broken["services"]["api"]["enviroment"] = {"VIDLOC_LOG_JSON": "true"}  # a typo'd key
    messages = sorted(e.message for e in validator.iter_errors(broken))
    assert len(messages) == 2, messages


def test_every_vidloc_variable_is_a_setting(compose: dict[str, Any]) -> None:
    known = setting_env_names()
    used = {name for service in compose["services"].values() for name in env_of(service)}
    referenced = {m.group(1) for text in walk_strings(compose) for m in _VAR.finditer(text)}
    unknown = sorted(n for n in used | referenced if n.startswith("VIDLOC_") and n not in known)
    assert unknown == []
    assert {"VIDLOC_KAFKA_BOOTSTRAP", "VIDLOC_METRICS_PORT", "VIDLOC_VLM_BASE_URL"} <= used


@pytest.mark.parametrize("name", VIDLOC_SERVICES)
def test_vidloc_services_reach_the_compose_kafka_and_s3(
    compose: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    services = compose["services"]
    env = env_of(services[name])
    assert {"VIDLOC_KAFKA_BOOTSTRAP", "VIDLOC_S3_ENDPOINT"} <= set(env)
    settings = settings_for(services[name], {}, monkeypatch)
    kafka_host = settings.kafka_bootstrap.rsplit(":", 1)[0]
    s3_host = settings.s3_endpoint.split("://", 1)[1].rsplit(":", 1)[0]
    assert kafka_host in services and s3_host in services
    listeners = services[kafka_host]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert f"//{settings.kafka_bootstrap}" in listeners
    s3_argv = services[s3_host]["command"]
    assert s3_argv[s3_argv.index("--port") + 1] == ":" + settings.s3_endpoint.rsplit(":", 1)[1]
    # The gateway's root keys are the ones vidloc signs with.
    gateway_env = services[s3_host]["environment"]
    assert interpolate(gateway_env["ROOT_ACCESS_KEY_ID"], {}) == (
        settings.s3_access_key.get_secret_value()
    )
    assert interpolate(gateway_env["ROOT_SECRET_ACCESS_KEY"], {}) == (
        settings.s3_secret_key.get_secret_value()
    )


@pytest.mark.parametrize("name", VIDLOC_SERVICES)
def test_vidloc_service_commands_parse_with_the_product_cli(
    compose: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = compose["services"][name]
    assert service["image"].startswith("vidloc") and service["build"]["context"] == "."
    # The image holds the product only: commands that the devkit plugs in (`stack init`) are
    # absent there, so the parser here must not have them either.
    monkeypatch.setattr(cli_app, "_add_plugin_commands", lambda sub: None)
    args = build_parser().parse_args(service["command"])
    assert args.command == service["command"][0]


def test_the_product_parser_lacks_the_devkit_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    # guards the test above: without the plugins, a devkit command does not parse
    monkeypatch.setattr(cli_app, "_add_plugin_commands", lambda sub: None)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["stack", "init"])


def test_workers_start_offline_and_switch_to_the_gpu_model_by_one_variable(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = compose["services"]["worker"]
    plain = settings_for(worker, {}, monkeypatch)
    assert plain.effective_localizer == "cv"  # no endpoint configured: no paid calls
    gpu = settings_for(worker, {"VIDLOC_VLM_BASE_URL": "http://vllm:8000/v1"}, monkeypatch)
    assert gpu.effective_localizer == "vlm"
    assert gpu.effective_vlm_base_url == "http://vllm:8000/v1"
    vllm_argv = compose["services"]["vllm"]["command"]
    served = vllm_argv[vllm_argv.index("--served-model-name") + 1 : vllm_argv.index("--host")]
    assert gpu.vlm_model in served
    assert gpu.metrics_port == 9400


def test_vllm_profile_serves_qwen3_vl_with_room_for_a_chunk(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    vllm = compose["services"]["vllm"]
    assert vllm["profiles"] == ["gpu"]
    assert vllm["image"].startswith("vllm/vllm-openai:")
    argv = vllm["command"]

    def flag(name: str, host_env: Mapping[str, str] | None = None) -> str:
        return interpolate(argv[argv.index(name) + 1], host_env or {})

    assert flag("--model") == "Qwen/Qwen3-VL-8B-Instruct"
    limits = json.loads(flag("--limit-mm-per-prompt"))
    assert limits["video"] == 0  # frames go as images, never as a video
    assert int(flag("--max-model-len")) >= 16_384
    assert 0 < float(flag("--gpu-memory-utilization")) <= 0.95
    (device,) = vllm["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and device["driver"] == "nvidia"
    assert "vllm" not in {d for s in compose["services"].values() for d in s.get("depends_on", {})}

    # The server's image limit is the workers' cap per request, by default and when changed.
    worker = compose["services"]["worker"]
    assert limits["image"] == settings_for(worker, {}, monkeypatch).vlm_max_images_per_request
    assert limits["image"] == Settings().vlm_max_images_per_request == 64
    host = {"VIDLOC_VLM_MAX_IMAGES_PER_REQUEST": "16"}
    changed = settings_for(worker, host, monkeypatch)
    assert json.loads(flag("--limit-mm-per-prompt", host))["image"] == 16
    assert changed.vlm_max_images_per_request == 16


def test_vllm_flags_follow_the_qwen3_vl_recipe(compose: dict[str, Any]) -> None:
    argv = compose["services"]["vllm"]["command"]

    def flag(name: str) -> str:
        value: str = argv[argv.index(name) + 1]
        return value

    # The content format is stated, not guessed from the template (Qwen3-VL#1728).
    assert flag("--chat-template-content-format") == "openai"
    # Guided JSON may not emit free whitespace (whitespace loops: vllm#38696, xgrammar#212);
    # the option exists for the xgrammar and guidance backends only.
    structured = json.loads(flag("--structured-outputs-config"))
    assert structured["disable_any_whitespace"] is True
    assert structured["backend"] in ("xgrammar", "guidance")
    # Prefix-cache hits reported (usage.prompt_tokens_details.cached_tokens).
    assert "--enable-prompt-tokens-details" in argv


def test_init_runs_before_the_services_that_need_topics_and_buckets(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    assert services["init"]["restart"] == "no"
    for name in ("bridge", "worker", "api", "deliverer"):
        assert services[name]["depends_on"]["init"]["condition"] == (
            "service_completed_successfully"
        )
    assert interpolate(services["kafka"]["image"], {}) == "apache/kafka:4.1.1"
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    s3 = services["s3"]
    assert interpolate(s3["image"], {}).startswith("versity/versitygw:v1.8")
    argv = s3["command"]
    assert argv[argv.index("--event-kafka-topic") + 1] == "s3.events"
    assert argv[argv.index("--event-kafka-url") + 1] == "kafka:9092"
    assert argv[-2] == "posix"
    filter_mount = next(v for v in s3["volumes"] if "event-filter.json" in v)
    assert (REPO / filter_mount.split(":", 1)[0]).resolve().is_file()


def test_the_deliverer_runs_apart_with_metrics_on_a_port_of_its_own(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from vidloc.cli.webhooks import run_deliver

    services = compose["services"]
    deliverer = services["deliverer"]
    monkeypatch.setattr(cli_app, "_add_plugin_commands", lambda sub: None)
    assert build_parser().parse_args(deliverer["command"]).func is run_deliver
    worker_port = settings_for(services["worker"], {}, monkeypatch).metrics_port
    settings = settings_for(deliverer, {}, monkeypatch)
    assert settings.webhook_metrics_port == 9401 != worker_port
    # It only calls out: no published port, no API keys.
    assert "ports" not in deliverer and "volumes" not in deliverer


def test_no_empty_default_where_podman_compose_runs_it(compose: dict[str, Any]) -> None:
    # podman-compose 1.0.3 leaves "${VAR:-}" as it is (its pattern wants a non-empty default):
    # a worker would read the literal text as a model endpoint and an API key.
    started_here = {n: s for n, s in compose["services"].items() if not s.get("profiles")}
    empty = sorted(t for t in walk_strings(started_here) if re.search(r"\$\{\w+:?-\}", t))
    assert empty == []


def test_health_checks_survive_podman_compose(compose: dict[str, Any]) -> None:
    # podman-compose 1.0.3 joins a CMD list into one shell string with broken quoting: an
    # argument holding a space or a quote comes out garbled (the API's check failed so), so
    # such checks are written as one CMD-SHELL string, which it quotes correctly.
    # (The gpu profile's vLLM cannot start here; Docker Compose runs its check as written.)
    checks = {
        n: s["healthcheck"]["test"]
        for n, s in compose["services"].items()
        if "healthcheck" in s and not s.get("profiles")
    }
    assert {"kafka", "api"} <= set(checks)
    for name, test in checks.items():
        if test[0] == "CMD":
            assert not [a for a in test[1:] if re.search(r"[\s'\"]", a)], name
        else:
            assert test[0] == "CMD-SHELL" and len(test) == 2, name


@pytest.mark.parametrize("node", ["kafka", "kafka-2", "kafka-3"])
def test_kafka_advertises_a_host_listener_on_the_published_port(
    compose: dict[str, Any], node: str
) -> None:
    # Every node of the cluster profile too: a client on the host is sent to each partition's
    # leader under the address that leader advertises.
    kafka = compose["services"][node]
    env = kafka["environment"]
    port_var = "KAFKA_HOST_PORT" if node == "kafka" else f"KAFKA_{node[-1]}_HOST_PORT"
    host_ports = set()
    for host_env in ({}, {port_var: "19194", "KAFKA_HOST_ADDRESS": "10.0.0.5"}):
        advertised = interpolate(env["KAFKA_ADVERTISED_LISTENERS"], host_env)
        host_listener = next(x for x in advertised.split(",") if x.startswith("HOST://"))
        (published,) = [interpolate(p, host_env) for p in kafka["ports"]]
        bind, host_port, container_port = published.split(":")
        assert host_listener.rsplit(":", 1)[1] == host_port
        assert f"HOST://:{container_port}" in env["KAFKA_LISTENERS"].split(",")
        assert bind == "127.0.0.1"  # no authentication on it: loopback unless asked
        host_ports.add(host_port)
    assert host_ports == {"19194", {"kafka": "9094", "kafka-2": "9095", "kafka-3": "9096"}[node]}
    assert "HOST:PLAINTEXT" in env["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"]
    # Only init creates topics, with their partition counts (podman-compose does not wait).
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


def test_the_api_binds_publicly_with_a_keys_file_in_a_mounted_directory(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    api = compose["services"]["api"]
    argv = api["command"]
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    keys_file = settings_for(api, {}, monkeypatch).api_keys_file
    assert keys_file is not None  # else `vidloc api` refuses the public bind
    # `vidloc api keys revoke` renames a new file into place: the container must see the
    # directory, since a mount of the file itself (or a secret) pins the old one.
    env = {"API_KEYS_DIR": "/srv/vidloc/keys"}
    mounts = [interpolate(v, env).split(":") for v in api["volumes"]]
    assert mounts == [["/srv/vidloc/keys", str(PurePosixPath(keys_file).parent), "ro"]]
    assert interpolate(api["volumes"][0], {}).startswith("./api-keys:")
    assert "secrets" not in api and "secrets" not in compose
    # No other service is handed the keys.
    others = [n for n, s in compose["services"].items() if n != "api"]
    assert not [
        n
        for n in others
        if any("keys" in str(v) for v in compose["services"][n].get("volumes", []))
    ]


def test_local_images_are_the_official_ones_rebuilt_at_the_same_versions(
    compose: dict[str, Any],
) -> None:
    env = dict(
        line.split("=", 1)
        for line in (REPO / "infra/compose/local-images.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    pom = (REPO / "infra/kafka/pom.xml").read_text()
    kafka_version = re.search(r"<kafka.version>(.+)</kafka.version>", pom)
    assert kafka_version is not None
    s3_source = (REPO / "devkit/stack/s3.py").read_text()
    gw_version = re.search(r'^VERSITYGW_VERSION = "(.+)"$', s3_source, re.MULTILINE)
    assert gw_version is not None
    services = compose["services"]
    assert env["KAFKA_IMAGE"] == f"localhost/vidloc-kafka:{kafka_version.group(1)}"
    assert interpolate(services["kafka"]["image"], {}) == f"apache/kafka:{kafka_version.group(1)}"
    assert interpolate(services["kafka"]["image"], env) == env["KAFKA_IMAGE"]
    assert env["S3_IMAGE"] == f"localhost/vidloc-versitygw:{gw_version.group(1)}"
    assert interpolate(services["s3"]["image"], {}) == f"versity/versitygw:{gw_version.group(1)}"
    assert interpolate(services["s3"]["image"], env) == env["S3_IMAGE"]
    build_args = services["worker"]["build"]["args"]
    assert interpolate(build_args["BASE_IMAGE"], env) == env["BASE_IMAGE"]


def test_the_kafka_health_check_exists_in_the_local_image(compose: dict[str, Any]) -> None:
    test = compose["services"]["kafka"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    script = PurePosixPath(test[1])
    containerfile = (REPO / "infra/images/kafka/Containerfile").read_text()
    copy = next(
        ln.split()
        for ln in containerfile.splitlines()
        if ln.startswith("COPY") and script.name in ln
    )
    assert copy[0] == "COPY" and copy[-1].rstrip("/") == str(script.parent)
    local = REPO / "infra/images/kafka" / script.name
    assert local.is_file() and local.stat().st_mode & 0o111


# --- the Dockerfile ----------------------------------------------------------------------


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (REPO / "Dockerfile").read_text().replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), " ".join(rest.split())))
    return out


def copied_sources(steps: list[tuple[str, str]]) -> set[str]:
    """Every source of every COPY (all arguments but the destination)."""
    return {src for op, arg in steps if op == "COPY" for src in arg.split()[:-1]}


def test_dockerfile_builds_a_non_root_vidloc_image_on_plain_debian(
    compose: dict[str, Any],
) -> None:
    steps = dockerfile_instructions()
    ops = [op for op, _ in steps]
    # Debian bookworm, from Docker Hub or made locally: the compose file passes the same
    # BASE_IMAGE argument the Dockerfile declares, and defaults to the same image.
    assert steps[0] == ("ARG", "BASE_IMAGE=debian:bookworm-slim")
    assert steps[1] == ("FROM", "${BASE_IMAGE}")
    build = compose["services"]["worker"]["build"]
    assert interpolate(build["args"]["BASE_IMAGE"], {}) == "debian:bookworm-slim"
    runs = " && ".join(arg for op, arg in steps if op == "RUN")
    assert re.search(r"apt-get install [^&]*\bpython3 python3-venv\b", runs)
    assert "pip install -r" in runs and "pip install --no-deps ." in runs
    copied = copied_sources(steps)
    pyproject = (REPO / "pyproject.toml").read_text()
    packages = re.search(r"include = \[(.*?)\]", pyproject)
    assert packages is not None
    for package in re.findall(r'"(\w+)\*"', packages.group(1)):
        assert package in copied, f"{package} is installed by pyproject but never copied"
    assert {"pyproject.toml", "README.md"} <= copied
    user = [arg for op, arg in steps if op == "USER"]
    assert user and user[-1] not in ("root", "0")
    assert ops.index("USER") > max(
        i for i, op in enumerate(ops) if op == "RUN" and "pip" in steps[i][1]
    )
    assert ("ENTRYPOINT", '["vidloc"]') in steps
    exposed = {p for op, arg in steps if op == "EXPOSE" for p in arg.split()}
    assert {str(Settings().metrics_port), str(Settings().webhook_metrics_port)} <= exposed


def test_no_secret_is_baked_into_an_image() -> None:
    files = [REPO / "Dockerfile", *sorted((REPO / "infra" / "images").glob("*/Containerfile"))]
    assert len(files) == 3
    for path in files:
        text = path.read_text()
        env_lines = [
            ln for ln in text.splitlines() if ln.strip().upper().startswith(("ENV", "ARG"))
        ]
        assert not [ln for ln in env_lines if re.search(r"SECRET|PASSWORD|_KEY\b|TOKEN", ln)]
    # The proxy CA reaches pip as a build secret only, never a COPY.
    assert "--mount=type=secret,id=ca" in (REPO / "Dockerfile").read_text()


def test_dockerignore_keeps_what_the_build_copies() -> None:
    ignored = {
        line.strip().rstrip("/")
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    copied = copied_sources(dockerfile_instructions())
    assert not copied & ignored
    assert {".venv", ".git", ".stack", ".cache"} <= ignored
