{{ config(materialized='table') }}

-- Playlists cut into sessions, duplicates collapsed, a position inside each session: one row per
-- distinct track in a session, on integer keys (the marts join the string ids back).
-- A session is a maximal run of consecutive staged rows (file order) of the same playlist (user and
-- playlist name); a rejected line between two rows of the same playlist does not cut it. Inside a
-- session an exact duplicate (same track) is collapsed into its first row: n_occurrences counts its
-- rows, and position numbers the distinct tracks 1..n by their first row.
-- The runs are found as gaps and islands, with windows partitioned by playlist only (no window over
-- the whole table in file order, which would run on one thread): see the CTEs below.

with

identified as (

    select * from {{ ref('int_playlist_tracks_identified') }}

),

rejected as (

    select line_number from {{ ref('rejected_lines') }}

),

indexed as (

    -- staged_index: the row's rank among the staged rows in file order (staged rows with no other
    -- staged row between them have consecutive indexes, whatever rejected lines lie between them)
    {{ staged_row_index('identified', 'rejected') }}

),

islands as (

    -- Inside a playlist, the rows of one run have consecutive staged indexes and consecutive ranks
    -- in the playlist, so index - rank is constant on a run; another playlist's row between two of
    -- its rows raises the index, not the rank, so the next run gets a larger run_offset.
    select
        line_number,
        playlist_number,
        track_number,
        staged_index - row_number() over (partition by playlist_number order by line_number) as run_offset
    from indexed

),

collapsed as (

    -- the first row of each track in its run stands for all its rows
    select
        playlist_number,
        run_offset,
        track_number,
        min(line_number) as first_line_number,
        count(*) as n_occurrences
    from islands
    group by playlist_number, run_offset, track_number

),

runs as (

    select
        playlist_number,
        run_offset,
        min(first_line_number) as first_line_number
    from collapsed
    group by playlist_number, run_offset

),

numbered_runs as (

    select
        playlist_number,
        run_offset,
        -- session_key numbers the runs in file order: 1, 2, ... (one row per run: a small sort)
        row_number() over (order by first_line_number) as session_key,
        -- the n-th run of a playlist in the file is its session n
        row_number() over (partition by playlist_number order by first_line_number) as session_number
    from runs

),

final as (

    select
        numbered_runs.session_key,
        collapsed.playlist_number,
        numbered_runs.session_number,
        collapsed.track_number,
        collapsed.first_line_number,
        collapsed.n_occurrences,
        row_number() over (
            partition by numbered_runs.session_key order by collapsed.first_line_number
        ) as position
    from collapsed
    inner join numbered_runs
        on
            collapsed.playlist_number = numbered_runs.playlist_number
            and collapsed.run_offset = numbered_runs.run_offset

)

select * from final
