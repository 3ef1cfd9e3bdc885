{#
    Let a test's `where` config say `__run_date__` for the day being built.

    A test's `where` is rendered when dbt parses the project, where project macros are not
    available. dbt's documented way around it is to override this macro, which applies `where`
    to the tested model at run time: here it replaces the placeholder `__run_date__` with
    run_date_literal() (e.g. '2024-01-01'::date) and then does what dbt's default does.

    dbt_project.yml sets `+where: "snapshot_date = __run_date__"` for every generic test, so a
    test of a model holding many days looks at the rows of run_date only.
#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where -%}
        {%- set where = where | replace('__run_date__', run_date_literal()) -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
