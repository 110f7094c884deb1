-- Staged rows with integer stand-ins for their playlist and track, in file order (line_number): the
-- input of the sessionization. A view: only the sessionization reads it, so it is never stored.

with

staged as (

    select * from {{ ref('stg_spotify__playlist_tracks') }}

),

track_spellings as (

    select * from {{ ref('int_track_spellings_identified') }}

),

playlists as (

    select * from {{ ref('int_playlists_identified') }}

),

final as (

    select
        staged.line_number,
        playlists.playlist_number,
        track_spellings.track_number
    from staged
    inner join track_spellings
        on
            staged.artist_name = track_spellings.artist_name
            and staged.track_name = track_spellings.track_name
    inner join playlists
        on
            staged.user_id = playlists.user_id
            and staged.playlist_name = playlists.playlist_name

)

select * from final
