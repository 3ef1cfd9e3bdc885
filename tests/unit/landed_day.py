"""Build a landed day in a temporary DATA_DIR the way step 1 does: stage files as target-jsonl
writes them, then `Landing.publish` them with a catalog. No database, no Meltano."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from northwind_elt.landing import SOURCES, Landing, Source

DAY = dt.date(2024, 1, 1)

POSTGRES = SOURCES["postgres"]
CSV = SOURCES["csv"]

ORDER_SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": ["integer"]},
        "customer_id": {"type": ["string", "null"]},
        "freight": {"type": ["number", "null"]},
    },
}
LINE_SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": ["integer"]},
        "product_id": {"type": ["integer"]},
        "unit_price": {"type": ["number"]},
        "quantity": {"type": ["integer"]},
        "discount": {"type": ["number"]},
    },
}


def stream(name: str, schema: dict[str, Any], keys: list[str], selected: bool = True) -> dict[str, Any]:
    """One catalog entry as the taps write it (keys in key_properties and in the metadata)."""
    return {
        "tap_stream_id": name,
        "stream": name,
        "schema": schema,
        "key_properties": keys,
        "metadata": [{"breadcrumb": [], "metadata": {"selected": selected, "table-key-properties": keys}}],
    }


def jsonl(records: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def land(landing: Landing, source: Source, files: dict[str, str], catalog: list[dict[str, Any]], day: dt.date = DAY) -> dict[str, Any]:
    """Stage `files` ({stream: JSONL text}) for `source` and publish them."""
    staging = landing.stage(source, day)
    for name, text in files.items():
        (staging / f"{name}.jsonl").write_text(text)
    return landing.publish(source, day, {"streams": catalog})


def orders(count: int) -> list[dict[str, Any]]:
    return [{"order_id": 10248 + i, "customer_id": f"C{i:03d}", "freight": i + 0.25} for i in range(count)]


def order_lines(count: int) -> list[dict[str, Any]]:
    return [
        {"order_id": 10248 + i // 2, "product_id": 1 + i % 2, "unit_price": 14.5, "quantity": 1 + i, "discount": 0.15} for i in range(count)
    ]


def land_day(data_dir: Path, order_count: int = 5, line_count: int = 7, day: dt.date = DAY) -> Landing:
    """Both step-1 tasks succeeded for `day`: postgres (orders, and an empty shippers table) and csv."""
    landing = Landing(data_dir)
    land(
        landing,
        POSTGRES,
        {"public-orders": jsonl(list(reversed(orders(order_count))))},  # staged out of order
        [stream("public-orders", ORDER_SCHEMA, ["order_id"]), stream("public-shippers", ORDER_SCHEMA, ["order_id"])],
        day,
    )
    land(
        landing,
        CSV,
        {"order_details": jsonl(order_lines(line_count))},
        [stream("order_details", LINE_SCHEMA, ["order_id", "product_id"])],
        day,
    )
    return landing
