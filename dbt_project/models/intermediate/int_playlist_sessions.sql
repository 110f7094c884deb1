{{ config(materialized='table') }}

-- One row per playlist session, with its string ids: session_id from playlist_id + session number.

with

sessionized as (

    select * from {{ ref('int_playlist_tracks_sessionized') }}

),

playlists as (

    select * from {{ ref('int_playlists_identified') }}

),

sessions as (

    select
        session_key,
        playlist_number,
        session_number,
        count(*) as n_tracks,
        sum(n_occurrences) as n_rows,
        min(first_line_number) as first_line_number
    from sessionized
    group by session_key, playlist_number, session_number

),

final as (

    select
        sessions.session_key,
        {{ short_id(['playlists.playlist_id', dbt.cast('sessions.session_number', dbt.type_string())]) }}
            as session_id,
        playlists.playlist_id,
        cast(sessions.session_number as integer) as session_number,
        playlists.user_id,
        playlists.playlist_name,
        cast(sessions.n_tracks as integer) as n_tracks,
        cast(sessions.n_rows as integer) as n_rows,
        sessions.first_line_number
    from sessions
    inner join playlists
        on sessions.playlist_number = playlists.playlist_number

)

select * from final
