{#
  The typed CRM contact columns that stg_crm__contacts (the current record) passes on from
  stg_crm__contact_snapshots (every version), in their order; written once so the two keep
  one column list.
#}
{% macro crm_contact_columns() -%}
  {{ return([
      'user_id', 'email', 'signup_at', 'signup_date', 'company', 'industry', 'company_size',
      'country', 'role', 'plan', 'acquisition_channel',
  ]) }}
{%- endmacro %}
