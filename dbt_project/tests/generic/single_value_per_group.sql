{#- Fails on every group (e.g. a session) in which the column takes more than one value. -#}
{% test single_value_per_group(model, column_name, group_by) %}

with

checked as (

    select * from {{ model }}

),

final as (

    select
        {{ group_by }},
        count(distinct {{ column_name }}) as n_values
    from checked
    group by {{ group_by }}
    having count(distinct {{ column_name }}) > 1

)

select * from final

{% endtest %}
