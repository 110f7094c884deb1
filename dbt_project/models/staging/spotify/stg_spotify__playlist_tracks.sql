-- One row per loaded physical line of the raw file: renamed, typed, trimmed. File order = line_number.

with

lines as (

    select * from {{ ref('base_spotify__lines') }}

),

final as (

    select
        line_number,
        user_id,
        artist_name,
        track_name,
        playlist_name,
        is_recovered
    from lines
    where reject_reason is null

)

select * from final
