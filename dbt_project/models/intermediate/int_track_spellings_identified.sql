{{ config(materialized='table') }}

-- One row per distinct spelling (artist name, track name) of the staged rows, with its identities
-- (docs/contracts.md): track_id from the normalized artist + title, artist_id from the normalized
-- artist. Ids are hashed once per spelling, not once per row. Several spellings can share an id.
-- track_number and artist_number are integer stand-ins for the ids: the 12.9M-row steps downstream
-- sort, group and join integers, and the string ids are joined back once.

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

normalized as (

    select
        artist_name,
        track_name,
        n_rows,
        {{ normalize_name('artist_name') }} as artist_key,
        {{ normalize_name('track_name') }} as track_key
    from spellings

),

identified as (

    select
        artist_name,
        track_name,
        n_rows,
        {{ short_id(['artist_key', 'track_key']) }} as track_id,
        {{ short_id(['artist_key']) }} as artist_id
    from normalized

),

final as (

    select
        artist_name,
        track_name,
        track_id,
        artist_id,
        dense_rank() over (order by track_id) as track_number,
        dense_rank() over (order by artist_id) as artist_number,
        n_rows
    from identified

)

select * from final
