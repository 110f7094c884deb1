-- One row per playlist session: who, which name, how big, auto-made or not, and its tracks in order.

with

playlist_tracks as (

    select * from {{ ref('fct_playlist_tracks') }}

),

playlists as (

    select * from {{ ref('int_playlists_identified') }}

),

sessions as (

    select
        session_id,
        playlist_id,
        session_number,
        count(*) as n_tracks,
        sum(n_occurrences) as n_rows,
        min(first_line_number) as first_line_number,
        {{ dbt.listagg('track_id', "' '", 'order by position') }} as track_ids
    from playlist_tracks
    group by session_id, playlist_id, session_number

),

final as (

    select
        sessions.session_id,
        sessions.playlist_id,
        playlists.user_id,
        playlists.playlist_name,
        sessions.session_number,
        cast(sessions.n_tracks as integer) as n_tracks,
        cast(sessions.n_rows as integer) as n_rows,
        -- names the Spotify client gives playlists it fills by itself; they mix tastes
        lower(playlists.playlist_name) in (
            {%- for name in var('auto_playlist_names') %}
                '{{ name | lower }}'{{ "," if not loop.last }}
            {%- endfor %}
        ) as is_auto,
        sessions.track_ids,
        sessions.first_line_number
    from sessions
    inner join playlists
        on sessions.playlist_id = playlists.playlist_id

)

select * from final
