-- One row per track (normalized artist + title): display names, artist, and how much it is used.

with

sessionized as (

    select * from {{ ref('int_playlist_tracks_sessionized') }}

),

tracks as (

    select * from {{ ref('int_tracks_named') }}

),

usage as (

    select
        track_number,
        count(*) as n_playlists,
        sum(n_occurrences) as n_rows
    from sessionized
    group by track_number

),

final as (

    select
        tracks.track_id,
        tracks.artist_id,
        tracks.artist_name,
        tracks.track_name,
        cast(usage.n_playlists as bigint) as n_playlists,
        cast(usage.n_rows as bigint) as n_rows,
        tracks.artist_name = '' as is_unknown_artist
    from tracks
    inner join usage
        on tracks.track_number = usage.track_number

)

select * from final
