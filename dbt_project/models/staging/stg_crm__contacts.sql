-- The current CRM record per user (latest snapshot), typed.
select
    user_id,
    email,
    signup_at,
    signup_date,
    company,
    industry,
    company_size,
    country,
    role,
    plan,
    acquisition_channel,
    updated_at
from {{ ref('stg_crm__contact_snapshots') }}
where valid_to_date is null
