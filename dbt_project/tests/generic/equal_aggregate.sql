{#- Reconciliation: an aggregate over this model equals an aggregate over another relation
    (row counts by default). Fails with one row showing both values when they differ. -#}
{%- test equal_aggregate(model, compare_model, expression='count(*)', compare_expression=none, compare_where='true') -%}

with

this_side as (

    select {{ expression }} as this_value from {{ model }}

),

other_side as (

    select {{ compare_expression or expression }} as other_value from {{ compare_model }}
    where {{ compare_where }}

),

final as (

    select
        this_side.this_value,
        other_side.other_value
    from this_side
    cross join other_side
    where not coalesce(this_side.this_value = other_side.other_value, false)

)

select * from final

{%- endtest %}
