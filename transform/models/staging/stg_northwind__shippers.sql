-- One row per shipping company and snapshot day: typed and renamed.

with

source as (

    select * from {{ source('northwind', 'shippers') }}

),

renamed as (

    select

        ----------  keys
        snapshot_date,
        shipper_id::integer as shipper_id,

        ----------  text
        company_name,
        phone

    from source

)

select * from renamed
