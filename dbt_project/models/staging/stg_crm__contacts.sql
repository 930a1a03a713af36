-- The current CRM record per user (latest snapshot), typed.
-- A table, not a view: five tests and the marts read it (each read of a view re-filters every
-- CRM version).
{{ config(materialized='table') }}
select
    {%- for column in crm_contact_columns() %}
    {{ column }},
    {%- endfor %}
    updated_at
from {{ ref('stg_crm__contact_snapshots') }}
where valid_to_date is null
