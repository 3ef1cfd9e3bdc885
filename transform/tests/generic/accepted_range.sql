{#
    A local copy of dbt_utils' `accepted_range` test (dbt-labs/dbt-utils, Apache License 2.0),
    kept here because the dbt package hub cannot be reached offline (`dbt deps` fails). It differs
    in one argument: dbt_utils has one `inclusive` flag for both bounds, this copy has
    `min_inclusive` and `max_inclusive` (0 <= discount < 1 needs both kinds). Replace it with the
    package's test if the project ever vendors dbt_utils.

    Every non-null value of `column_name` lies in a range; either bound may be left out, and each
    bound is inclusive unless told otherwise.

        - name: discount          # 0 <= discount < 1
          data_tests:
            - accepted_range:
                arguments:
                  min_value: 0
                  max_value: 1
                  max_inclusive: false

    NULLs are not judged here (add not_null for that). Fails with one row per value out of range.
#}
{% test accepted_range(model, column_name, min_value=none, max_value=none, min_inclusive=true, max_inclusive=true) %}

{%- if min_value is none and max_value is none -%}
    {{ exceptions.raise_compiler_error("accepted_range on " ~ column_name ~ " needs min_value, max_value or both") }}
{%- endif %}

select
    {{ column_name }} as value_out_of_range,
    count(*) as rows_out_of_range
from {{ model }}
where {{ column_name }} is not null
  and not (
        true
        {%- if min_value is not none %}
        and {{ column_name }} {{ '>=' if min_inclusive else '>' }} {{ min_value }}
        {%- endif %}
        {%- if max_value is not none %}
        and {{ column_name }} {{ '<=' if max_inclusive else '<' }} {{ max_value }}
        {%- endif %}
  )
group by 1

{% endtest %}
