-- One row per artist (normalized name). All rows with an empty artist name share one artist, flagged
-- is_unknown: nothing is guessed for them.

with

track_spellings as (

    select * from {{ ref('int_track_spellings_identified') }}

),

tracks as (

    select * from {{ ref('dim_tracks') }}

),

playlist_tracks as (

    select * from {{ ref('fct_playlist_tracks') }}

),

artist_spellings as (

    select
        artist_id,
        artist_name,
        sum(n_rows) as n_rows
    from track_spellings
    group by artist_id, artist_name

),

display_names as (

    select
        artist_id,
        artist_name,
        row_number() over (partition by artist_id order by n_rows desc, artist_name asc) as spelling_rank
    from artist_spellings

),

track_counts as (

    select
        artist_id,
        count(*) as n_tracks,
        sum(n_rows) as n_rows
    from tracks
    group by artist_id

),

playlist_counts as (

    select
        artist_id,
        count(distinct session_id) as n_playlists
    from playlist_tracks
    group by artist_id

),

final as (

    select
        display_names.artist_id,
        display_names.artist_name,
        cast(track_counts.n_tracks as bigint) as n_tracks,
        cast(playlist_counts.n_playlists as bigint) as n_playlists,
        cast(track_counts.n_rows as bigint) as n_rows,
        display_names.artist_name = '' as is_unknown
    from display_names
    inner join track_counts
        on display_names.artist_id = track_counts.artist_id
    inner join playlist_counts
        on display_names.artist_id = playlist_counts.artist_id
    where display_names.spelling_rank = 1

)

select * from final
