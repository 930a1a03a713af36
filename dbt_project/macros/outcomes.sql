{#- The churn outcome over the label horizon, one definition for every reader (labels, KPIs).
    vars.churn_definition:
      inactivity (non-contractual: stores, usage products): no qualifying activity on any day
        of the horizon; every customer ever active is at risk, however long quiet;
      cancellation (contractual): the customer enters the cancelled state within the horizon.
    Arguments are SQL expressions: the 0/1 "enters the churned state within the horizon",
    the all-time active days at the start and at the end of the horizon. -#}
{% macro churn_outcome(churns_within_horizon, active_days_now, active_days_at_horizon) -%}
{%- if var('churn_definition') | trim | lower == 'cancellation' -%}
coalesce({{ churns_within_horizon }}, 0) = 1
{%- else -%}
coalesce({{ active_days_at_horizon }}, {{ active_days_now }}) <= {{ active_days_now }}
{%- endif -%}
{%- endmacro %}

{#- The population a churn model trains on and scores: inactivity: every customer ever
    active (quiet ones included; quietness is a feature); cancellation: customers not yet
    cancelled at the snapshot. -#}
{% macro churn_population(is_churned, active_days_total) -%}
{%- if var('churn_definition') | trim | lower == 'cancellation' -%}
not {{ is_churned }}
{%- else -%}
{{ active_days_total }} > 0
{%- endif -%}
{%- endmacro %}
