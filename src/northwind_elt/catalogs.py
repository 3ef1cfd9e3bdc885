"""Rediscover the source's catalog only when the source's schema changed.

tap-postgres discovery is step 1's largest fixed cost on a small day. Meltano caches the catalog
in `.meltano/run/tap-postgres/` but cannot know when the source's tables change, so
`elt:open-extract-postgres` fingerprints the source's schema (one query) and removes the cache when
it changed, when the source is unreachable (discovery then says why), or when the cached catalog is
not whole JSON (a run killed while it was written leaves it empty, and Meltano would refuse it).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import psycopg

from .settings import Settings

FINGERPRINT_SQL = """
select n.nspname, c.relname, c.relkind, a.attnum, a.attname,
       format_type(a.atttypid, a.atttypmod), a.attnotnull,
       coalesce((select array_agg(k order by k) from unnest(i.indkey) k), '{}') as primary_key
from pg_attribute a
join pg_class c on c.oid = a.attrelid
join pg_namespace n on n.oid = c.relnamespace
left join pg_index i on i.indrelid = c.oid and i.indisprimary
where c.relkind in ('r', 'p', 'v', 'm', 'f')
  and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%'
  and a.attnum > 0 and not a.attisdropped
order by 1, 2, 4
"""


def run_dir(settings: Settings, tap: str) -> Path:
    """Where Meltano keeps the catalog a tap last ran with."""
    return settings.root / ".meltano" / "run" / tap


def source_fingerprint(settings: Settings) -> str | None:
    """A hash of the source schema as discovery sees it, or None if the source cannot be read."""
    try:
        with psycopg.connect(settings.source.conninfo()) as conn:
            rows = conn.execute(FINGERPRINT_SQL).fetchall()
    except psycopg.Error:
        return None
    return hashlib.sha256(repr((settings.source.describe(), rows)).encode()).hexdigest()


def refresh_if_schema_changed(settings: Settings, tap: str = "tap-postgres") -> bool:
    """Remove the tap's cached catalog unless it was discovered under today's source schema; True if kept."""
    folder = run_dir(settings, tap)
    marker = folder / "source-schema.sha256"
    fingerprint = source_fingerprint(settings)
    kept = fingerprint is not None and marker.exists() and marker.read_text() == fingerprint and _whole(folder / "tap.properties.json")
    if not kept:
        for name in ("tap.properties.json", "tap.properties.cache_key", marker.name):
            (folder / name).unlink(missing_ok=True)
        if fingerprint is not None:
            folder.mkdir(parents=True, exist_ok=True)
            marker.write_text(fingerprint)
    return kept


def _whole(catalog: Path) -> bool:
    """Whether a cached catalog is absent (Meltano discovers) or parses as JSON."""
    try:
        json.loads(catalog.read_bytes())
    except FileNotFoundError:
        return True
    except ValueError:
        return False
    return True
