{#- Fails on every row where the SQL boolean expression is not true (null counts as a failure). -#}
{% test expression_is_true(model, expression, column_name=none) %}

with

checked as (

    select * from {{ model }}

),

final as (

    select * from checked
    where not coalesce({{ expression }}, false)

)

select * from final

{% endtest %}
