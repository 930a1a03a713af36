-- The custom CRM attributes sources.yml declares (var custom_attributes), typed, one row per
-- CRM version [valid_from_date, valid_to_date), so fct_user_features reads them as they were
-- on each snapshot date. A value that does not parse as its declared type is null.
with contact_snapshots as (
    select * from {{ ref('stg_crm__contact_snapshots') }}
)

select
    contact_snapshots.user_id,
    contact_snapshots.valid_from_date,
    {%- for attribute in custom_attributes() %}
    {{ custom_attribute_value('contact_snapshots.attributes', attribute) }} as {{ attribute.name }},
    {%- endfor %}
    contact_snapshots.valid_to_date
from contact_snapshots
