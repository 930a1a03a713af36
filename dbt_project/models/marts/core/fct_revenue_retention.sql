-- Revenue retention by signup cohort (weekly and monthly, as fct_cohort_retention): revenue
-- (USD, by paid date) and paying users per period since the cohort start, cumulative revenue
-- per cohort user, and net_revenue_retention = period revenue / revenue of the cohort's first
-- period with revenue (null before it). Every completed period has a row (revenue 0 when
-- nothing was paid): the sums are left-joined onto a cohort x period grid.
{%- set users_rel = ref('dim_users') -%}
{%- set activity_rel = ref('int_user_activity_daily') %}
with invoices as (
    select
        user_id,
        paid_date,
        amount_usd
    from {{ ref('stg_billing__invoices') }}
    where is_revenue
),

{{ retention_frame(users_rel, activity_rel) }},

{% for grain in ['week', 'month'] %}
{{ signup_cohorts(grain, 'users') }},

{{ grain }}_revenue as (
    select
        c.cohort_grain,
        c.cohort_start,
        {{ dbt.datediff('c.cohort_start', dbt.date_trunc(grain, 'i.paid_date'), grain) }}
            as period_number,
        {{ exact_sum('i.amount_usd') }} as revenue,
        count(distinct i.user_id) as paying_users
    from {{ grain }}_cohort_users as c
    inner join invoices as i on c.user_id = i.user_id and c.cohort_start <= i.paid_date
    cross join data_end
    where i.paid_date <= data_end.data_end_date
    group by
        c.cohort_grain,
        c.cohort_start,
        {{ dbt.datediff('c.cohort_start', dbt.date_trunc(grain, 'i.paid_date'), grain) }}
),

{{ grain }}_grid as (
    {{ cohort_period_grid(grain, grain ~ '_cohorts', 'calendar', 'data_end') }}
),
{% endfor %}

combined as (
    {% for grain in ['week', 'month'] %}
    select
        g.cohort_grain,
        g.cohort_start,
        g.period_number,
        g.cohort_size,
        coalesce(r.revenue, 0.0) as revenue,
        coalesce(r.paying_users, 0) as paying_users
    from {{ grain }}_grid as g
    left join {{ grain }}_revenue as r
        on g.cohort_start = r.cohort_start and g.period_number = r.period_number
    {{ "union all" if not loop.last }}
    {% endfor %}
),

with_base as (
    select
        combined.*,
        min(case when combined.revenue > 0 then combined.period_number end)
            over (partition by combined.cohort_grain, combined.cohort_start) as base_period
    from combined
),

base as (
    select
        cohort_grain,
        cohort_start,
        revenue as base_revenue
    from with_base
    where period_number = base_period
)

select
    w.cohort_grain,
    w.cohort_start,
    cast(w.period_number as {{ dbt.type_int() }}) as period_number,
    cast(w.cohort_size as {{ dbt.type_int() }}) as cohort_size,
    cast(w.paying_users as {{ dbt.type_int() }}) as paying_users,
    cast(w.revenue as {{ segflow_double() }}) as revenue,
    cast({{ exact_sum('w.revenue') }} over (
        partition by w.cohort_grain, w.cohort_start order by w.period_number
        rows between unbounded preceding and current row
    ) / w.cohort_size as {{ segflow_double() }})
        as cumulative_revenue_per_user,
    cast(
        case when w.period_number >= w.base_period then w.revenue / base.base_revenue end
        as {{ segflow_double() }}
    ) as net_revenue_retention
from with_base as w
left join base on w.cohort_grain = base.cohort_grain and w.cohort_start = base.cohort_start
