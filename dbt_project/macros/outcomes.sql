{#- The churn outcome over the label horizon, one definition for every reader (labels, KPIs).
    vars.churn_definition:
      inactivity (non-contractual: stores, usage products): no qualifying activity on any day
        of the horizon; every customer ever active is at risk, however long quiet;
      cancellation (contractual): the customer enters the cancelled state within the horizon.
    Arguments are SQL expressions: the 0/1 "enters the churned state within the horizon",
    the all-time active days at the start and at the end of the horizon. -#}
{% macro churn_outcome(churns_within_horizon, active_days_now, active_days_at_horizon) -%}
{%- if setting('churn_definition') | trim | lower == 'cancellation' -%}
coalesce({{ churns_within_horizon }}, 0) = 1
{%- else -%}
coalesce({{ active_days_at_horizon }}, {{ active_days_now }}) <= {{ active_days_now }}
{%- endif -%}
{%- endmacro %}

{#- The population a churn model trains on and scores: inactivity: every customer ever
    active (quiet ones included; quietness is a feature); cancellation: customers not yet
    cancelled at the snapshot. -#}
{% macro churn_population(is_churned, active_days_total) -%}
{%- if setting('churn_definition') | trim | lower == 'cancellation' -%}
not {{ is_churned }}
{%- else -%}
{{ active_days_total }} > 0
{%- endif -%}
{%- endmacro %}

{#- Outcomes in a forward window: per anchor row of `anchors` (user_id + `anchor_date`), the
    `aggregates` (SQL over alias `e`) of the `events` rows of the same user with
    anchor < e.`event_date` <= anchor + `days`, and `event_filter` (SQL over `e`) when given.
    `anchors_from`: a date no anchor is before, when the caller knows one (an incremental
    run's first rebuilt day): the events are then read only after it (a literal the scan can
    prune on; without it each anchor is joined with every row of its user).
    Anchors without an event in the window get no row (callers left join and coalesce). The
    one shape behind every "what happened next" column: ml_label_windows, int_segment_members. -#}
{% macro forward_window(anchors, anchor_date, events, event_date, days, aggregates,
                        event_filter=none, anchors_from=none) -%}
    select
        m.user_id,
        m.{{ anchor_date }},
        {{ aggregates | join(',\n        ') }}
    from {{ anchors }} as m
    inner join {{ events }} as e
        on
            m.user_id = e.user_id
            {%- if event_filter %}
            and {{ event_filter }}
            {%- endif %}
            and m.{{ anchor_date }} < e.{{ event_date }}
            and e.{{ event_date }} <= {{ dbt.dateadd('day', days, 'm.' ~ anchor_date) }}
            {%- if anchors_from %}
            and e.{{ event_date }} > {{ anchors_from }}
            {%- endif %}
    group by m.user_id, m.{{ anchor_date }}
{%- endmacro %}
