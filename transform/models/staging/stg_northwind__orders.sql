-- One row per order and snapshot day: typed and renamed, nothing filtered or joined.

with

source as (

    select * from {{ source('northwind', 'orders') }}

),

renamed as (

    select

        ----------  keys
        snapshot_date,
        order_id::integer as order_id,
        trim(customer_id) as customer_id,  -- bpchar in the source: no padding
        employee_id::integer as employee_id,
        ship_via::integer as ship_via,  -- the shipper_id of the shipper

        ----------  dates
        order_date,
        required_date,
        shipped_date,  -- null while the order has not shipped

        ----------  amounts
        freight::numeric(12, 2) as freight,

        ----------  ship-to address
        ship_name,
        ship_address,
        ship_city,
        ship_region,
        ship_postal_code,
        ship_country

    from source

)

select * from renamed
