{#
    Referential integrity inside one day: every non-null value of `column_name` exists as `field`
    in `to` *for the same snapshot_date*.

    dbt's built-in `relationships` test would accept an order line of 2024-01-02 whose order only
    exists in the snapshot of 2024-01-01; the joins of this project never cross days, so neither
    does this test.

        - name: order_id
          data_tests:
            - relationships_within_snapshot:
                arguments:
                  to: ref('stg_northwind__orders')
                  field: order_id

    Fails with one row per orphan value (and how many child rows carry it).
#}
{% test relationships_within_snapshot(model, column_name, to, field, snapshot_column='snapshot_date') %}

with

child as (

    -- `model` may be a filtered subquery (the test's `where` config), hence the CTE
    select * from {{ model }}

),

parent as (

    select * from {{ to }}

)

select
    child.{{ snapshot_column }},
    child.{{ column_name }} as orphan_value,
    count(*) as orphan_rows
from child
where child.{{ column_name }} is not null
  and not exists (
        select 1
        from parent
        where parent.{{ field }} = child.{{ column_name }}
          and parent.{{ snapshot_column }} = child.{{ snapshot_column }}
  )
group by 1, 2

{% endtest %}
