-- Reconciliation: for the day being built, the mart has exactly one row per order line that
-- step 2 loaded into raw.order_details. Returns one row (and so fails) when the counts differ,
-- e.g. when a join fanned out (duplicate lookup rows) or the mart kept stale rows of the day.

with

raw_lines as (

    select count(*) as raw_rows
    from {{ source('northwind', 'order_details') }}
    where snapshot_date = {{ run_date_literal() }}

),

mart_lines as (

    select count(*) as mart_rows
    from {{ ref('orders_details') }}
    where snapshot_date = {{ run_date_literal() }}

)

select
    {{ run_date_literal() }} as snapshot_date,
    raw_lines.raw_rows,
    mart_lines.mart_rows
from raw_lines
cross join mart_lines
where raw_lines.raw_rows <> mart_lines.mart_rows
