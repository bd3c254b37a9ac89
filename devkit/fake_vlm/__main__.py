"""``python -m devkit.fake_vlm --host 127.0.0.1 --port 8900``: run the fake model server.

Flags fall back to ``VIDLOC_FAKE_VLM_*`` environment variables so a stack script can set them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys

import uvicorn

from devkit.fake_vlm.faults import parse_faults
from devkit.fake_vlm.prefix import DEFAULT_CAPACITY_BLOCKS
from devkit.fake_vlm.server import DEFAULT_MODEL, FakeConfig, create_app
from devkit.fake_vlm.styles import ANSWER_STYLES


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m devkit.fake_vlm", description=__doc__)
    parser.add_argument("--host", default=env("VIDLOC_FAKE_VLM_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env("VIDLOC_FAKE_VLM_PORT", "8900")))
    parser.add_argument("--model", default=env("VIDLOC_FAKE_VLM_MODEL", DEFAULT_MODEL))
    parser.add_argument(
        "--api-key",
        default=env("VIDLOC_FAKE_VLM_API_KEY"),
        help="require this bearer key (default: accept any)",
    )
    parser.add_argument(
        "--no-json-schema",
        action="store_true",
        default=env("VIDLOC_FAKE_VLM_NO_JSON_SCHEMA", "") not in ("", "0", "false"),
        help="answer 400 to response_format json_schema, like endpoints without guided decoding",
    )
    parser.add_argument(
        "--max-images",
        type=int,
        default=int(env("VIDLOC_FAKE_VLM_MAX_IMAGES", "0")) or None,
        help="refuse requests with more images, like vLLM's --limit-mm-per-prompt (default: none)",
    )
    parser.add_argument(
        "--prefix-cache-blocks",
        type=int,
        default=int(env("VIDLOC_FAKE_VLM_PREFIX_CACHE_BLOCKS", str(DEFAULT_CAPACITY_BLOCKS))),
        help="16-token blocks the simulated prefix cache keeps (LRU); 0: none "
        f"(default {DEFAULT_CAPACITY_BLOCKS})",
    )
    parser.add_argument(
        "--strict-content-parts",
        action="store_true",
        default=env("VIDLOC_FAKE_VLM_STRICT_CONTENT_PARTS", "") not in ("", "0", "false"),
        help="answer 400 to content-part fields OpenAI's schema lacks (vLLM's image uuid)",
    )
    parser.add_argument(
        "--faults",
        default=env("VIDLOC_FAKE_VLM_FAULTS", ""),
        help='JSON list of fault specs applied from the first request, e.g. [{"kind":"429"}]',
    )
    parser.add_argument(
        "--answer-style",
        choices=ANSWER_STYLES,
        default=env("VIDLOC_FAKE_VLM_ANSWER_STYLE", "canonical"),
        help="how correct answers are worded, like the real model's shapes (default canonical)",
    )
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(message)s")
    try:
        faults = tuple(parse_faults(json.loads(args.faults))) if args.faults.strip() else ()
    except ValueError as exc:
        print(f"bad --faults: {exc}", file=sys.stderr)
        return 2
    config = FakeConfig(
        model=args.model,
        api_key=args.api_key or None,
        json_schema_supported=not args.no_json_schema,
        faults=faults,
        max_images=args.max_images,
        answer_style=args.answer_style,
        prefix_cache_blocks=args.prefix_cache_blocks,
        strict_content_parts=args.strict_content_parts,
    )
    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
