-- One row per playlist session: who, which name, how big, auto-made or not, and its tracks in order.

with

playlist_tracks as (

    select * from {{ ref('fct_playlist_tracks') }}

),

sessions as (

    select * from {{ ref('int_playlist_sessions') }}

),

track_lists as (

    select
        session_id,
        {{ ordered_list_text('track_id', 'position', "' '") }} as track_ids
    from playlist_tracks
    group by session_id

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
        on sessions.session_id = track_lists.session_id

)

select * from final
