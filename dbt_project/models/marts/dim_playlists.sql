-- One row per playlist session: who, which name, how big, auto-made or not, and its tracks in order.

with

sessionized as (

    select * from {{ ref('int_playlist_tracks_sessionized') }}

),

sessions as (

    select * from {{ ref('int_playlist_sessions') }}

),

tracks as (

    select * from {{ ref('int_tracks_named') }}

),

track_lists as (

    select
        sessionized.session_key,
        {{ dbt.listagg('tracks.track_id', "' '", 'order by sessionized.position') }} as track_ids
    from sessionized
    inner join tracks
        on sessionized.track_number = tracks.track_number
    group by sessionized.session_key

),

final as (

    select
        sessions.session_id,
        sessions.playlist_id,
        sessions.user_id,
        sessions.playlist_name,
        sessions.session_number,
        sessions.n_tracks,
        sessions.n_rows,
        -- names the Spotify client gives playlists it fills by itself; they mix tastes
        lower(sessions.playlist_name) in (
            {%- for name in var('auto_playlist_names') %}
                '{{ name | lower }}'{{ "," if not loop.last }}
            {%- endfor %}
        ) as is_auto,
        track_lists.track_ids,
        sessions.first_line_number
    from sessions
    inner join track_lists
        on sessions.session_key = track_lists.session_key

)

select * from final
