-- One row per employee and snapshot day: typed and renamed, with the full name put together.
-- The `photo` column (bytea, loaded as hex text) is left out: no model uses it and it is large.

with

source as (

    select * from {{ source('northwind', 'employees') }}

),

renamed as (

    select

        ----------  keys
        snapshot_date,
        employee_id::integer as employee_id,
        reports_to::integer as reports_to_employee_id,

        ----------  names
        first_name,
        last_name,
        concat_ws(' ', first_name, last_name) as full_name,
        title,
        title_of_courtesy,

        ----------  dates
        birth_date,
        hire_date,

        ----------  address and phone
        address,
        city,
        region,
        postal_code,
        country,
        home_phone,
        extension,

        ----------  other
        notes,
        photo_path

    from source

)

select * from renamed
