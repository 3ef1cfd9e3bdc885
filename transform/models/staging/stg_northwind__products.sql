-- One row per product and snapshot day: typed and renamed.

with

source as (

    select * from {{ source('northwind', 'products') }}

),

renamed as (

    select

        ----------  keys
        snapshot_date,
        product_id::integer as product_id,
        supplier_id::integer as supplier_id,
        category_id::integer as category_id,

        ----------  text
        product_name,
        quantity_per_unit,

        ----------  numbers
        unit_price::numeric(12, 2) as unit_price,
        units_in_stock::integer as units_in_stock,
        units_on_order::integer as units_on_order,
        reorder_level::integer as reorder_level,

        ----------  flags
        discontinued = 1 as is_discontinued  -- an integer 0/1 in the source

    from source

)

select * from renamed
