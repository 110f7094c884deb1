{{ config(materialized='table') }}

-- Playlists cut into sessions, duplicates collapsed, a position inside each session: one row per
-- distinct track in a session, on integer keys (the marts join the string ids back).
-- A session is a maximal run of consecutive staged rows (file order) of the same playlist (user and
-- playlist name); a rejected line between two rows of the same playlist does not cut it. Inside a
-- session an exact duplicate (same track) is collapsed into its first row: n_occurrences counts its
-- rows, and position numbers the distinct tracks 1..n by their first row.

with

identified as (

    select * from {{ ref('int_playlist_tracks_identified') }}

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

    -- session_key numbers the runs in file order: 1, 2, ...
    select
        line_number,
        playlist_number,
        track_number,
        sum(is_run_start) over (
            order by line_number rows between unbounded preceding and current row
        ) as session_key
    from run_starts

),

collapsed as (

    -- the first row of each track in its run stands for all its rows
    select
        session_key,
        playlist_number,
        track_number,
        min(line_number) as first_line_number,
        count(*) as n_occurrences
    from runs
    group by session_key, playlist_number, track_number

),

final as (

    select
        session_key,
        playlist_number,
        -- the n-th run of a playlist in the file is its session n
        dense_rank() over (partition by playlist_number order by session_key) as session_number,
        track_number,
        first_line_number,
        n_occurrences,
        row_number() over (partition by session_key order by first_line_number) as position
    from collapsed

)

select * from final
