{#- What a business means by activity and by a purchase: settings SEGFLOW_ACTIVITY_EVENTS,
    SEGFLOW_PURCHASE_SOURCE and SEGFLOW_PURCHASE_EVENTS (orchestration/settings.py) reach dbt
    as vars.activity_events, vars.purchase_source and vars.purchase_events, validated against
    the tracking plan there. Changing one changes stored history: rebuild with --full-refresh. -#}

{#- True for an event that counts as activity: vars.activity_events empty = every event
    (track, page, screen, identify), otherwise track calls with one of those names. -#}
{% macro is_activity_event(event_type, event_name) -%}
{%- set names = setting('activity_events') -%}
{%- if names | length == 0 -%}
true
{%- else -%}
({{ event_type }} = 'track' and {{ event_name }} in {{ sql_list(names) }})
{%- endif -%}
{%- endmacro %}

{#- True for a track call that counts as a purchase (vars.purchase_source events or both). -#}
{% macro is_purchase_event(event_type, event_name) -%}
{%- if setting('purchase_source') | trim | lower in ['events', 'both'] -%}
({{ event_type }} = 'track' and {{ event_name }} in {{ sql_list(setting('purchase_events')) }})
{%- else -%}
false
{%- endif -%}
{%- endmacro %}

{#- Whether a paid invoice counts as a purchase (vars.purchase_source invoices or both); the
    revenue columns and the LTV label always sum paid invoices. -#}
{% macro invoices_are_purchases() -%}
{{ setting('purchase_source') | trim | lower in ['invoices', 'both'] }}
{%- endmacro %}
