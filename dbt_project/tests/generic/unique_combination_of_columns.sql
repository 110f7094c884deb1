{#- Fails on every combination of the columns that occurs more than once. -#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

with

checked as (

    select * from {{ model }}

),

final as (

    select
        {{ combination_of_columns | join(',\n        ') }},
        count(*) as n_rows
    from checked
    group by {{ combination_of_columns | join(', ') }}
    having count(*) > 1

)

select * from final

{% endtest %}
