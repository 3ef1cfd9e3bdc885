{#
    A local copy of dbt_utils' `unique_combination_of_columns` test (dbt-labs/dbt-utils, Apache
    License 2.0), kept here because the dbt package hub cannot be reached offline (`dbt deps`
    fails). Same name and `combination_of_columns` argument; without the package's
    `quote_columns` option. Replace it with the package's test if the project ever vendors dbt_utils.

    The combination of the given columns is unique: no two rows share the same values.

    Staging models hold every loaded day, so a source key is only unique together with
    snapshot_date:

        data_tests:
          - unique_combination_of_columns:
              arguments:
                combination_of_columns: [snapshot_date, order_id]

    Fails with one row per duplicated combination (and how many rows share it).
#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

{%- set columns = combination_of_columns | join(', ') %}

select
    {{ columns }},
    count(*) as rows_sharing_the_key
from {{ model }}
group by {{ columns }}
having count(*) > 1

{% endtest %}
