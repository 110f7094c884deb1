-- Playlists cut into sessions, duplicates collapsed, a position inside each session.
-- A session is a maximal run of consecutive staged rows (file order) of the same playlist (user and
-- playlist name); a rejected line between two rows of the same playlist does not cut it. Inside a
-- session an exact duplicate (same track_id) is collapsed into its first row: n_occurrences counts
-- its rows, and position numbers the distinct tracks 1..n by their first row.
-- The heavy steps work on integers (line_number, playlist_number, track_number); the string ids are
-- joined back once at the end.

with

identified as (

    select * from {{ ref('int_playlist_tracks_identified') }}

),

playlists as (

    select * from {{ ref('int_playlists_identified') }}

),

tracks as (

    select distinct
        track_number,
        track_id,
        artist_id
    from {{ ref('int_track_spellings_identified') }}

),

run_starts as (

    select
        line_number,
        playlist_number,
        track_number,
        case
            when lag(playlist_number) over (order by line_number) = playlist_number then 0
            else 1
        end as is_run_start
    from identified

),

runs as (

    select
        line_number,
        playlist_number,
        track_number,
        sum(is_run_start) over (
            order by line_number rows between unbounded preceding and current row
        ) as run_number
    from run_starts

),

collapsed as (

    -- the first row of each track in its run stands for all its rows
    select
        run_number,
        track_number,
        min(line_number) as first_line_number,
        count(*) as n_occurrences
    from runs
    group by run_number, track_number

),

positioned as (

    select
        run_number,
        track_number,
        first_line_number,
        n_occurrences,
        row_number() over (partition by run_number order by first_line_number) as position
    from collapsed

),

session_numbers as (

    -- the n-th run of a playlist in the file is its session n
    select
        run_number,
        playlist_number,
        row_number() over (partition by playlist_number order by run_number) as session_number
    from runs
    group by run_number, playlist_number

),

sessions as (

    select
        session_numbers.run_number,
        session_numbers.session_number,
        playlists.playlist_id,
        playlists.user_id,
        {{ short_id(['playlists.playlist_id', dbt.cast('session_numbers.session_number', dbt.type_string())]) }}
            as session_id
    from session_numbers
    inner join playlists
        on session_numbers.playlist_number = playlists.playlist_number

),

final as (

    select
        sessions.session_id,
        sessions.playlist_id,
        cast(sessions.session_number as integer) as session_number,
        sessions.user_id,
        tracks.track_id,
        tracks.artist_id,
        positioned.first_line_number,
        cast(positioned.n_occurrences as integer) as n_occurrences,
        cast(positioned.position as integer) as position
    from positioned
    inner join sessions
        on positioned.run_number = sessions.run_number
    inner join tracks
        on positioned.track_number = tracks.track_number

)

select * from final
