{#
    Building day D of an incremental mart replaces exactly D and records where D came from.

    replace_mart_day_start()   pre-hook, in the model's transaction, before its query runs:
      1. locks the load records of D (raw._loads, FOR SHARE): a load of D waits until this build
         has committed, so the rows read and the checksum recorded below are of one load; and
         takes a transaction lock of its own for D, so two builds of D (whatever started them)
         run one after the other even if the project's file locks were bypassed;
      2. deletes every row of D from the mart. dbt's delete+insert deletes only the keys of the new
         batch: a batch with no row of D (raw holds no order line for D) would keep the old
         rows. Deleting D first makes the mart hold exactly what raw holds for D, even nothing.

    record_mart_day_end()      post-hook, same transaction: writes, for D, the checksum of the
      landed day the raw rows came from (raw._loads.landed_sha256, written by step 2 from the task
      markers of its DATA_DIR) and the number of mart rows, into marts._orders_details_builds.
      The export compares it with its own DATA_DIR's markers and refuses rows built from other
      files. `tested_at` stays empty until `elt:close-transform` sets it: dbt's tests of the day
      passed, and only then does the export take the day. Provenance lives in this side table, so the mart's columns (and the exported files)
      do not change.

    `raw` is the schema of the raw layer (src/northwind_elt/warehouse.py: RAW, and __sources.yml).
#}
{% macro mart_builds_relation() -%}
    {{ this.schema }}._{{ this.identifier }}_builds
{%- endmacro %}

{% macro replace_mart_day_start() -%}
    select pg_advisory_xact_lock(hashtext('{{ this }} ' || {{ run_date_literal() }}::text));
    select 1 from raw._loads where snapshot_date = {{ run_date_literal() }} for share;
    create table if not exists {{ mart_builds_relation() }} (
        snapshot_date date primary key,
        landed_sha256 text,
        rows bigint not null,
        built_at timestamptz not null default now(),
        tested_at timestamptz
    );
    do $$ begin  -- a builds table from before tested_at
        if not exists (select 1 from information_schema.columns where table_schema = '{{ this.schema }}'
                       and table_name = '_{{ this.identifier }}_builds' and column_name = 'tested_at') then
            alter table {{ mart_builds_relation() }} add column tested_at timestamptz;
        end if;
    end $$;
    {% if is_incremental() -%}
        delete from {{ this }} where snapshot_date = {{ run_date_literal() }};
    {%- endif %}
{%- endmacro %}

{% macro record_mart_day_end() -%}
    insert into {{ mart_builds_relation() }} (snapshot_date, landed_sha256, rows)
    select
        {{ run_date_literal() }},
        -- one checksum for every table of the day, else none (a load from before checksums)
        (select case when count(distinct landed_sha256) = 1 and count(landed_sha256) = count(*)
                     then min(landed_sha256) end
           from raw._loads where snapshot_date = {{ run_date_literal() }}),
        (select count(*) from {{ this }} where snapshot_date = {{ run_date_literal() }})
    on conflict (snapshot_date) do update
        set landed_sha256 = excluded.landed_sha256, rows = excluded.rows, built_at = now(), tested_at = null;
{%- endmacro %}
