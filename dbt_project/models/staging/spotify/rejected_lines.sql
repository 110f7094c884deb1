-- The quarantine: every physical data line that is not a staged row, with its raw text and the reason.

with

lines as (

    select * from {{ ref('base_spotify__lines') }}

),

final as (

    select
        line_number,
        raw_line,
        reject_reason as reason,
        reject_detail as detail
    from lines
    where reject_reason is not null

)

select * from final
