{{ config(materialized='table') }}

-- One row per playlist: a user and a trimmed playlist name (names are case-sensitive, as in Spotify),
-- with playlist_id = first 16 hex chars of md5(user_id, playlist_name).

with

staged as (

    select * from {{ ref('stg_spotify__playlist_tracks') }}

),

playlists as (

    select
        user_id,
        playlist_name,
        count(*) as n_rows
    from staged
    group by user_id, playlist_name

),

identified as (

    select
        {{ short_id(['user_id', 'playlist_name']) }} as playlist_id,
        user_id,
        playlist_name,
        n_rows
    from playlists

),

final as (

    select
        playlist_id,
        -- an integer stand-in for playlist_id, so the sessionization sorts and groups integers
        row_number() over (order by playlist_id) as playlist_number,
        user_id,
        playlist_name,
        n_rows
    from identified

)

select * from final
