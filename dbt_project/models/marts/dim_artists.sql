-- One row per artist (normalized name). All rows with an empty artist name share one artist, flagged
-- is_unknown: nothing is guessed for them.

with

track_spellings as (

    select * from {{ ref('int_track_spellings_identified') }}

),

tracks as (

    select * from {{ ref('int_tracks_named') }}

),

sessionized as (

    select * from {{ ref('int_playlist_tracks_sessionized') }}

),

artist_spellings as (

    select
        artist_number,
        artist_id,
        artist_name,
        sum(n_rows) as n_rows
    from track_spellings
    group by artist_number, artist_id, artist_name

),

display_names as (

    -- the most used spelling of the artist (ties: alphabetical)
    select
        artist_number,
        artist_id,
        artist_name,
        row_number() over (partition by artist_number order by n_rows desc, artist_name asc) as spelling_rank
    from artist_spellings

),

artist_rows as (

    select
        artist_number,
        count(distinct track_number) as n_tracks,
        sum(n_rows) as n_rows
    from track_spellings
    group by artist_number

),

artist_sessions as (

    select distinct
        tracks.artist_number,
        sessionized.session_key
    from sessionized
    inner join tracks
        on sessionized.track_number = tracks.track_number

),

playlist_counts as (

    select
        artist_number,
        count(*) as n_playlists
    from artist_sessions
    group by artist_number

),

final as (

    select
        display_names.artist_id,
        display_names.artist_name,
        cast(artist_rows.n_tracks as bigint) as n_tracks,
        cast(playlist_counts.n_playlists as bigint) as n_playlists,
        cast(artist_rows.n_rows as bigint) as n_rows,
        display_names.artist_name = '' as is_unknown
    from display_names
    inner join artist_rows
        on display_names.artist_number = artist_rows.artist_number
    inner join playlist_counts
        on display_names.artist_number = playlist_counts.artist_number
    where display_names.spelling_rank = 1

)

select * from final
