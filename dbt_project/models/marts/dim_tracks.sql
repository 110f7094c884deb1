-- One row per track (normalized artist + title): display names, artist, and how much it is used.

with

playlist_tracks as (

    select * from {{ ref('fct_playlist_tracks') }}

),

track_spellings as (

    select * from {{ ref('int_track_spellings_identified') }}

),

display_names as (

    -- several spellings can share a track_id (case, inner spaces): show the most used one
    select
        track_id,
        artist_id,
        artist_name,
        track_name,
        row_number() over (
            partition by track_id order by n_rows desc, artist_name asc, track_name asc
        ) as spelling_rank
    from track_spellings

),

usage as (

    select
        track_id,
        count(*) as n_playlists,
        sum(n_occurrences) as n_rows
    from playlist_tracks
    group by track_id

),

final as (

    select
        display_names.track_id,
        display_names.artist_id,
        display_names.artist_name,
        display_names.track_name,
        cast(usage.n_playlists as bigint) as n_playlists,
        cast(usage.n_rows as bigint) as n_rows,
        display_names.artist_name = '' as is_unknown_artist
    from display_names
    inner join usage
        on display_names.track_id = usage.track_id
    where display_names.spelling_rank = 1

)

select * from final
