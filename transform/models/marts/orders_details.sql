-- orders_details: one row per order line of the day run_date() (RUN_DATE), with everything the order
-- line refers to (its order, product, customer, employee and shipper) spelled out.
--
-- Built one day at a time. The table holds every day built so far; building day D deletes the
-- rows of D and inserts them again (incremental strategy delete+insert on snapshot_date), so a
-- rerun of D replaces exactly D and never touches another day. The very first build creates the
-- table with the rows of D only. `full_refresh: false` keeps `dbt build --full-refresh` from
-- dropping the history of every other day. The hooks (macros/mart_day.sql) delete D first (so a
-- day with no order line leaves no old row of D behind) and record which landed day D was built
-- from (for the export's provenance check).

{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='snapshot_date',
        on_schema_change='append_new_columns',
        full_refresh=false,
        pre_hook="{{ replace_mart_day_start() }}",
        post_hook="{{ record_mart_day_end() }}",
    )
}}

with

-- Each input is read for the day being built only; the joins below also match on
-- snapshot_date, so a row is never combined with another day's snapshot.

order_details as (

    select * from {{ ref('stg_northwind__order_details') }}
    where snapshot_date = {{ run_date_literal() }}

),

orders as (

    select * from {{ ref('stg_northwind__orders') }}
    where snapshot_date = {{ run_date_literal() }}

),

products as (

    select * from {{ ref('stg_northwind__products') }}
    where snapshot_date = {{ run_date_literal() }}

),

customers as (

    select * from {{ ref('stg_northwind__customers') }}
    where snapshot_date = {{ run_date_literal() }}

),

employees as (

    select * from {{ ref('stg_northwind__employees') }}
    where snapshot_date = {{ run_date_literal() }}

),

shippers as (

    select * from {{ ref('stg_northwind__shippers') }}
    where snapshot_date = {{ run_date_literal() }}

),

-- Left joins from the order line outward: every line of raw.order_details appears exactly once
-- (each lookup is unique per day), even if what it points to is missing. Missing references
-- are caught by the tests (relationships_within_snapshot, not_null on order_date), not hidden
-- by dropping rows.

order_lines as (

    select

        ----------  keys
        order_details.snapshot_date,
        order_details.order_id,
        order_details.product_id,

        ----------  the order
        orders.order_date,
        orders.required_date,
        orders.shipped_date,
        orders.customer_id,
        customers.company_name as customer_company_name,
        orders.employee_id,
        employees.full_name as employee_full_name,
        orders.ship_via,
        shippers.company_name as shipper_company_name,
        orders.freight,
        orders.ship_name,
        orders.ship_address,
        orders.ship_city,
        orders.ship_region,
        orders.ship_postal_code,
        orders.ship_country,

        ----------  the line
        products.product_name,
        order_details.unit_price,
        order_details.quantity,
        order_details.discount,

        -- exact decimal arithmetic (numeric, never float), rounded half away from zero to cents
        round(
            order_details.unit_price * order_details.quantity * (1 - order_details.discount),
            2
        )::numeric(14, 2) as line_total

    from order_details

    left join orders
        on orders.snapshot_date = order_details.snapshot_date
        and orders.order_id = order_details.order_id

    left join products
        on products.snapshot_date = order_details.snapshot_date
        and products.product_id = order_details.product_id

    left join customers
        on customers.snapshot_date = orders.snapshot_date
        and customers.customer_id = orders.customer_id

    left join employees
        on employees.snapshot_date = orders.snapshot_date
        and employees.employee_id = orders.employee_id

    left join shippers
        on shippers.snapshot_date = orders.snapshot_date
        and shippers.shipper_id = orders.ship_via

)

select * from order_lines
