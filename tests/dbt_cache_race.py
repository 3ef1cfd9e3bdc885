"""Run `dbt <args>` in-process with dbt's relation-cache race window held open (used by
tests/test_pipeline.py::test_dbt_relation_cache_race_cannot_happen, with the dbt plugin's Python).

When a model looks up a relation in a schema the cache does not hold yet, dbt-core 1.11
(adapter.list_relations) checks "is the schema cached?", lists the schema from the database and
adds what it listed, without holding the cache lock across the three. With 2 threads and no
cache warm-up (`--no-populate-cache`), two staging views both list `staging`; if one thread's
listing is added after the other thread moved `stg_x` to `stg_x__dbt_backup` in the cache, the
next rename `stg_x__dbt_tmp -> stg_x` finds `stg_x` already cached: "Cache inconsistency
detected: in rename, new key ... already in cache". It happened once in 96 daily builds.

Here every listing is slowed (the first by 0.5 s, so a second thread finds the schema uncached
too; later ones are held until some thread renamed a relation to __dbt_backup, at most 3 s), and
the renaming thread pauses 1 s after that rename: the rare interleaving becomes certain. With the
cache warmed up before the models run (dbt's default), the models never list a schema, and the
same build passes.
"""

from __future__ import annotations

import sys
import threading
import time

from dbt.adapters.cache import RelationsCache
from dbt.adapters.sql.impl import SQLAdapter
from dbt.cli.main import dbtRunner

backup_renamed = threading.Event()
listings: list[str] = []
listings_lock = threading.Lock()
original_list = SQLAdapter.list_relations_without_caching
original_rename = RelationsCache.rename


def list_relations_without_caching(self, schema_relation):  # type: ignore[no-untyped-def]
    relations = original_list(self, schema_relation)
    with listings_lock:
        listings.append(str(schema_relation))
        first = len(listings) == 1
    if first:
        time.sleep(0.5)
    else:
        backup_renamed.wait(3)
    return relations


def rename(self, old, new):  # type: ignore[no-untyped-def]
    original_rename(self, old, new)
    if new.identifier.endswith("__dbt_backup"):
        backup_renamed.set()
        time.sleep(1)


SQLAdapter.list_relations_without_caching = list_relations_without_caching  # type: ignore[method-assign]
RelationsCache.rename = rename  # type: ignore[method-assign]

if __name__ == "__main__":
    result = dbtRunner().invoke(sys.argv[1:])
    print(f"listings: {listings}", flush=True)
    if result.exception is not None:
        print(f"dbt raised: {result.exception}", flush=True)
    sys.exit(0 if result.success else 1)
