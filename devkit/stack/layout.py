"""Where the local stack keeps its files: one value computed from Settings, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vidloc.settings import Settings

# infra/ lives at the repository root; the stack only runs from a checkout, never from a wheel.
REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA_DIR = REPO_ROOT / "infra"


@dataclass(frozen=True)
class StackLayout:
    """Absolute paths: the stack dir holds state (data, logs, pids), the cache dir downloads."""

    stack_dir: Path
    cache_dir: Path
    infra_dir: Path = INFRA_DIR

    @classmethod
    def from_settings(cls, settings: Settings, cwd: Path | None = None) -> StackLayout:
        base = cwd or Path.cwd()
        return cls(
            stack_dir=(base / settings.stack_dir).resolve(),
            cache_dir=(base / settings.cache_dir).resolve(),
        )

    @property
    def pids_dir(self) -> Path:
        return self.stack_dir / "pids"

    @property
    def logs_dir(self) -> Path:
        return self.stack_dir / "logs"

    def pid_file(self, component: str) -> Path:
        return self.pids_dir / f"{component}.pid"

    def log_file(self, component: str) -> Path:
        return self.logs_dir / f"{component}.log"

    # Kafka
    @property
    def kafka_data(self) -> Path:
        return self.stack_dir / "kafka-data"

    @property
    def kafka_config(self) -> Path:
        return self.stack_dir / "kafka" / "server.properties"

    @property
    def kafka_libs(self) -> Path:
        return self.cache_dir / "kafka-libs"

    @property
    def kafka_pom(self) -> Path:
        return self.infra_dir / "kafka" / "pom.xml"

    @property
    def kafka_template(self) -> Path:
        return self.infra_dir / "kafka" / "server.properties.template"

    @property
    def kafka_log4j(self) -> Path:
        return self.infra_dir / "kafka" / "log4j2.xml"

    # S3 (versitygw)
    @property
    def s3_data(self) -> Path:
        return self.stack_dir / "s3-data"

    @property
    def versitygw_dir(self) -> Path:
        return self.cache_dir / "versitygw"

    @property
    def versitygw_bin(self) -> Path:
        return self.versitygw_dir / "bin" / "versitygw"

    @property
    def event_filter(self) -> Path:
        return self.infra_dir / "versitygw" / "event-filter.json"
