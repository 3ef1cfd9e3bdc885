{#
    No value of a numeric column has more than `places` decimal places.

    Staging casts amounts to fixed-scale types (e.g. numeric(12, 2)); a cast rounds silently, so
    the raw column is tested first: if the source ever sends 21.3500003815 (a float artefact) or
    a price with fractions of a cent, this test fails before a rounded value reaches the mart.

        - name: unit_price
          data_tests:
            - max_decimal_places:
                arguments:
                  places: 2

    Fails with one row per offending value.
#}
{% test max_decimal_places(model, column_name, places) %}

select
    {{ column_name }} as value_with_too_many_decimals,
    count(*) as rows_affected
from {{ model }}
where {{ column_name }} <> round({{ column_name }}, {{ places }})
group by 1

{% endtest %}
