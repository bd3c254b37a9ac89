"""JSON Schema (draft 2020-12) from the pydantic models: the one way contracts turn into schemas.

Pure: returns dicts. ``contracts.registry.generate_schemas`` addresses them and
``python -m contracts.generate`` writes them to ``contracts/schemas``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"


class _Generator(GenerateJsonSchema):
    """pydantic's generator without the titles it derives from Python names ("Event Id")."""

    def field_title_should_be_set(self, schema: Any) -> bool:
        return False

    def model_schema(self, schema: core_schema.ModelSchema) -> JsonSchemaValue:
        generated = super().model_schema(schema)
        generated.pop("title", None)
        return generated


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The validation-side JSON Schema of ``model``: what a document must look like to decode."""
    return model.model_json_schema(by_alias=True, schema_generator=_Generator, mode="validation")


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` with every local ``$ref`` replaced by its definition and ``$defs`` dropped.

    For endpoints whose structured-output support stops short of references. Recursive
    definitions cannot be inlined; none of the contracts has one.
    """
    defs = schema.get("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                rest = {k: v for k, v in node.items() if k != "$ref"}
                return {**resolve(defs[ref.removeprefix("#/$defs/")]), **resolve(rest)}
            return {k: resolve(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved
