-- One row per distinct track in a playlist session: what the model trains on. The sessionization
-- itself is int_playlist_tracks_sessionized (a view); this table is where it is computed and stored,
-- and the other marts read it from here.

with

sessionized as (

    select * from {{ ref('int_playlist_tracks_sessionized') }}

),

final as (

    select
        session_id,
        playlist_id,
        session_number,
        user_id,
        track_id,
        artist_id,
        position,
        n_occurrences,
        first_line_number
    from sessionized

)

select * from final
