-- Invoices, latest export per invoice_id, amounts converted to USD (vars.fx_rates_to_usd).
-- `is_revenue`: the invoice was paid (status paid, or refunded later: no refund date exists in
-- the contract, so revenue is recognised at paid_at and refunds are not netted).
with source as (
    select * from {{ source('raw', 'billing_invoices') }}
),

latest as (
    select
        *,
        row_number() over (
            partition by invoice_id
            order by _partition_date desc, _loaded_at desc, _source_file desc, _source_line desc
        ) as export_rank
    from source
    where invoice_id is not null
)

select
    invoice_id,
    trim(user_id) as user_id,
    cast(amount as {{ segflow_double() }}) as amount,
    upper(currency) as currency,
    {{ to_usd('cast(amount as ' ~ segflow_double() ~ ')', 'currency') }} as amount_usd,
    lower(status) as status,
    cast(period_start as {{ dbt.type_timestamp() }}) as period_start,
    cast(period_end as {{ dbt.type_timestamp() }}) as period_end,
    cast(period_start as date) as period_start_date,
    cast(period_end as date) as period_end_date,
    cast(paid_at as {{ dbt.type_timestamp() }}) as paid_at,
    cast(paid_at as date) as paid_date,
    lower(status) in ('paid', 'refunded') and paid_at is not null as is_revenue,
    -- Monthly-normalised amount (30-day month) for MRR.
    {{ to_usd('cast(amount as ' ~ segflow_double() ~ ')', 'currency') }} * 30.0
    / case
        when
            {{ dbt.datediff('period_start', 'period_end', 'day') }}
            > 0
            then {{ dbt.datediff('period_start', 'period_end', 'day') }}
        else 30
    end as monthly_amount_usd
from latest
where export_rank = 1
