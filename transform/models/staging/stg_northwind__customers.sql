-- One row per customer and snapshot day: typed and renamed.

with

source as (

    select * from {{ source('northwind', 'customers') }}

),

renamed as (

    select

        ----------  keys
        snapshot_date,
        trim(customer_id) as customer_id,  -- bpchar in the source: no padding

        ----------  text
        company_name,
        contact_name,
        contact_title,

        ----------  address and phone
        address,
        city,
        region,
        postal_code,
        country,
        phone,
        fax

    from source

)

select * from renamed
