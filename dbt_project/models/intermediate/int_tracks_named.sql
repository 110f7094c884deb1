{{ config(materialized='table') }}

-- One row per track: its ids, its integer stand-ins and the names to show. Several spellings can
-- share a track_id (case, inner whitespace): the names shown are the most used spelling (ties:
-- alphabetical), so they are deterministic.

with

track_spellings as (

    select * from {{ ref('int_track_spellings_identified') }}

),

ranked as (

    select
        track_number,
        track_id,
        artist_number,
        artist_id,
        artist_name,
        track_name,
        row_number() over (
            partition by track_number order by n_rows desc, artist_name asc, track_name asc
        ) as spelling_rank
    from track_spellings

),

final as (

    select
        track_number,
        track_id,
        artist_number,
        artist_id,
        artist_name,
        track_name
    from ranked
    where spelling_rank = 1

)

select * from final
