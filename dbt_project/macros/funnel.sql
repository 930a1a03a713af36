{#
  The onboarding funnel's step rates, defined once for every funnel mart (fct_onboarding_funnel,
  fct_onboarding_funnel_by_segment). A funnel is sequential: a user counts at step k only after
  reaching steps 1..k (in any time order), so users_reached never grows along the steps.

  funnel_reached_through(milestones, step, prefix, suffix): true when milestones 1..step are
  all reached; each milestone's condition is prefix ~ name ~ suffix
  (e.g. 'f.first_date_', ' is not null').

  funnel_previous_reached(partition_by): users_reached of the previous step of the same group
  (null at step 1), from a CTE named `steps` with columns step_number and users_reached.

  funnel_step_rates(group_size): from users_reached, previous_reached and the group's size:
    reached_rate             = users_reached / group_size
    conversion_from_previous = users_reached / previous step's users_reached (step 1: the
                               group's size; null when that is 0: nobody to convert)
    drop_off_users           = previous step's users_reached (step 1: group size) - users_reached
#}
{% macro funnel_reached_through(milestones, step, prefix, suffix='') -%}
  true
  {%- for earlier in milestones[:step] %}
  and {{ prefix }}{{ earlier['name'] }}{{ suffix }}
  {%- endfor %}
{%- endmacro %}

{% macro funnel_previous_reached(partition_by) -%}
  lag(steps.users_reached) over (partition by {{ partition_by }} order by steps.step_number)
{%- endmacro %}

{% macro funnel_step_rates(group_size) -%}
  {%- set previous = 'coalesce(previous_reached, ' ~ group_size ~ ')' -%}
    cast(users_reached * 1.0 / {{ group_size }} as {{ segflow_double() }}) as reached_rate,
    cast(
        case
            when {{ previous }} > 0 then users_reached * 1.0 / {{ previous }}
        end as {{ segflow_double() }}
    ) as conversion_from_previous,
    cast({{ previous }} - users_reached as {{ dbt.type_int() }}) as drop_off_users
{%- endmacro %}
