"""The local development stack: Kafka 4 (KRaft, from Maven Central jars) and versitygw S3."""

from devkit.stack.commands import ACTIONS, COMPONENTS, stack_command

__all__ = ["ACTIONS", "COMPONENTS", "stack_command"]
