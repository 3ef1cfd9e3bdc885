{#
    Use a model's custom schema verbatim.

    dbt's default builds a model with `schema: staging` into `<target schema>_staging`
    (e.g. public_staging), which suits many developers sharing one warehouse. This project has one
    warehouse per environment, and the export step reads `marts.orders_details` by that exact
    name, so `+schema: staging` means the schema `staging` and `+schema: marts` means `marts`.
    A model without a custom schema goes to the target's schema (profiles.yml).
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
