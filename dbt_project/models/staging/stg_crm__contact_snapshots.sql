-- One row per user per day the CRM record changed (the last version of that day), typed and
-- with its validity range [valid_from_date, valid_to_date), so point-in-time models can read
-- the CRM attributes as they were on any date.
-- A table, not a view like the other staging models: the feature, attribute, contact and
-- segment models read it several times a run (three times in fct_user_features' one query),
-- and each read of a view repeats its two window sorts over every raw CRM row.
{{ config(materialized='table') }}
with source as (
    select * from {{ source('raw', 'crm_contacts') }}
),

typed as (
    select
        trim(user_id) as user_id,
        lower(trim(email)) as email,
        cast(signup_at as {{ dbt.type_timestamp() }}) as signup_at,
        cast(signup_at as date) as signup_date,
        nullif(trim(company), '') as company,
        nullif(trim(industry), '') as industry,
        nullif(trim(company_size), '') as company_size,
        nullif(upper(trim(country)), '') as country,
        nullif(trim(role), '') as role,
        lower(trim(plan)) as plan,
        nullif(trim(acquisition_channel), '') as acquisition_channel,
        attributes,
        cast(updated_at as {{ dbt.type_timestamp() }}) as updated_at,
        cast(updated_at as date) as updated_date,
        _loaded_at,
        _source_file,
        _source_line
    from source
    where user_id is not null and trim(user_id) <> ''
),

last_of_day as (
    select
        *,
        row_number() over (
            partition by user_id, updated_date
            order by updated_at desc, _loaded_at desc, _source_file desc, _source_line desc
        ) as version_rank
    from typed
)

select
    {%- for column in crm_contact_columns() %}
    {{ column }},
    {%- endfor %}
    attributes,
    updated_at,
    updated_date as valid_from_date,
    lead(updated_date) over (partition by user_id order by updated_date) as valid_to_date
from last_of_day
where version_rank = 1
