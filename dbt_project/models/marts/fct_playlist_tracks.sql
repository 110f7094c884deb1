-- One row per distinct track in a playlist session: what the model trains on. The sessionization is
-- int_playlist_tracks_sessionized (integer keys); this joins the string ids back.

with

sessionized as (

    select * from {{ ref('int_playlist_tracks_sessionized') }}

),

sessions as (

    select * from {{ ref('int_playlist_sessions') }}

),

tracks as (

    select * from {{ ref('int_tracks_named') }}

),

final as (

    select
        sessions.session_id,
        sessions.playlist_id,
        sessions.session_number,
        sessions.user_id,
        tracks.track_id,
        tracks.artist_id,
        cast(sessionized.position as integer) as position,
        cast(sessionized.n_occurrences as integer) as n_occurrences,
        sessionized.first_line_number
    from sessionized
    inner join sessions
        on sessionized.session_key = sessions.session_key
    inner join tracks
        on sessionized.track_number = tracks.track_number

)

select * from final
