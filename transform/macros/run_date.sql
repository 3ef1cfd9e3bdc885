{#
    The day a dbt command works on (YYYY-MM-DD), required: the dbt variable `run_date` if given,
    else the environment variable RUN_DATE (as Meltano's `transform` job passes it):
        RUN_DATE=2024-01-01 dbt build
        dbt build --vars '{"run_date": "2024-01-01"}'

    Both are read only while models and tests run, never while dbt parses the project: a new day
    then leaves dbt's partial parsing valid (a changed `--vars` makes dbt re-parse everything).

    run_date()          the day as a 'YYYY-MM-DD' string (for Jinja)
    run_date_literal()  the day as a SQL literal: '2024-01-01'::date
#}
{% macro run_date() -%}
    {#- While dbt parses the project (execute is false) the day is not needed: `dbt ls`,
        `dbt parse` and `dbt docs serve` work without it. -#}
    {%- if not execute -%}
        {{- return('1970-01-01') -}}
    {%- endif -%}
    {%- set value = var('run_date', none) -%}
    {%- set name = "The variable run_date" -%}
    {%- if value is none or (value | string | trim) == '' -%}
        {%- set value = env_var('RUN_DATE', '') -%}
        {%- set name = "RUN_DATE" -%}
    {%- endif -%}
    {%- if (value | string | trim) == '' -%}
        {{ exceptions.raise_compiler_error(
            "The day to build is not set: RUN_DATE=2024-01-01 meltano run transform, "
            ~ "or RUN_DATE=2024-01-01 dbt build, or dbt build --vars '{\"run_date\": \"2024-01-01\"}'"
        ) }}
    {%- endif -%}
    {%- set text = value | string | trim -%}
    {%- set not_a_date = name ~ " is " ~ (text | tojson)
            ~ ", not a date: use the form YYYY-MM-DD, e.g. 2024-01-01" -%}
    {#- the form only: whether it is a day of the calendar (no 2024-02-30) is checked by
        PostgreSQL's cast in check_run_date(), which runs before any model -#}
    {%- if not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}', text) -%}
        {{ exceptions.raise_compiler_error(not_a_date) }}
    {%- endif -%}
    {{- return(text) -}}
{%- endmacro %}

{% macro run_date_literal() -%}
    '{{ run_date() }}'::date
{%- endmacro %}

{#
    Runs first in every `dbt build/run/test` (on-run-start in dbt_project.yml): a missing or
    malformed run_date stops the command with one clear error before any model is touched,
    instead of one error per model and test. A day of the right form but not in the calendar
    is refused by the cast itself (`date/time field value out of range: "2024-02-30"`): the hook
    fails, and so does every model and test at the same cast before it writes anything. (`nwelt`
    and `make` check DATE before dbt starts.)
#}
{% macro check_run_date() -%}
    select {{ run_date_literal() }} as run_date
{%- endmacro %}
