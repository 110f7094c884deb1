{{ config(materialized='table') }}

-- One row per distinct spelling (artist name, track name) of the staged rows, with its identities
-- (docs/contracts.md): track_id from the normalized artist + title, artist_id from the normalized
-- artist. Ids are hashed once per spelling, not once per row. Several spellings can share an id.

with

staged as (

    select * from {{ ref('stg_spotify__playlist_tracks') }}

),

spellings as (

    select
        artist_name,
        track_name,
        count(*) as n_rows
    from staged
    group by artist_name, track_name

),

identified as (

    select
        artist_name,
        track_name,
        {{ short_id([normalize_name('artist_name'), normalize_name('track_name')]) }} as track_id,
        {{ short_id([normalize_name('artist_name')]) }} as artist_id,
        n_rows
    from spellings

),

final as (

    select
        artist_name,
        track_name,
        track_id,
        artist_id,
        -- an integer stand-in for track_id, so the 12.9M-row sessionization sorts and groups integers
        dense_rank() over (order by track_id) as track_number,
        n_rows
    from identified

)

select * from final
