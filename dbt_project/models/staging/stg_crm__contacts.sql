-- The current CRM record per user (latest snapshot), typed.
select
    {%- for column in crm_contact_columns() %}
    {{ column }},
    {%- endfor %}
    updated_at
from {{ ref('stg_crm__contact_snapshots') }}
where valid_to_date is null
