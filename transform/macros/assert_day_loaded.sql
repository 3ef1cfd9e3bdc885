{#
    Transform's gate inside dbt (on-run-start in dbt_project.yml): `dbt build`, `run` and `test`
    refuse a day the load step has not committed (no row of the day in raw._loads), so a plain
    `RUN_DATE=D dbt build` cannot build an empty or stale day. (The `transform` job's
    `elt:open-transform` checks more: that raw's rows of the day were loaded from the landed files
    this DATA_DIR holds now.)
#}
{% macro assert_day_loaded() -%}
    {%- if execute and flags.WHICH in ('build', 'run', 'test') -%}
        {%- set day = run_date() -%}
        {%- set loads = adapter.get_relation(database=target.database, schema='raw', identifier='_loads') -%}
        {%- set found = 0 -%}
        {%- if loads is not none -%}
            {%- set query = "select count(*) from " ~ loads ~ " where snapshot_date = '" ~ day ~ "'::date" -%}
            {%- set result = run_query(query) -%}
            {%- set found = result.columns[0].values()[0] -%}
        {%- endif -%}
        {%- if found == 0 -%}
            {{ exceptions.raise_compiler_error(
                "transform refuses to run for " ~ day ~ ": the warehouse holds no load of " ~ day
                ~ " (raw._loads; make load DATE=" ~ day ~ " loads it once step 1 ran); run make pipeline DATE=" ~ day
            ) }}
        {%- endif -%}
    {%- endif -%}
    select 1 as day_loaded
{%- endmacro %}
