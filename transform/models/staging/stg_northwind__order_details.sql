-- One row per order line (order x product) and snapshot day: typed, nothing filtered or joined.

with

source as (

    select * from {{ source('northwind', 'order_details') }}

),

renamed as (

    select

        ----------  keys
        snapshot_date,
        order_id::integer as order_id,
        product_id::integer as product_id,

        ----------  numbers
        unit_price::numeric(12, 2) as unit_price,
        quantity::integer as quantity,
        discount::numeric(5, 4) as discount

    from source

)

select * from renamed
