-- Inside every session the positions are 1..n_tracks: smallest 1, largest n, and their sum n(n+1)/2
-- (positions come from row_number(); this guards the joins and the contract's promise).

with

playlist_tracks as (

    select * from {{ ref('fct_playlist_tracks') }}

),

sessions as (

    select * from {{ ref('dim_playlists') }}

),

positions as (

    select
        session_id,
        count(*) as n_tracks,
        min(position) as first_position,
        max(position) as last_position,
        sum(position) as position_sum
    from playlist_tracks
    group by session_id

),

final as (

    select
        positions.*,
        sessions.n_tracks as dim_n_tracks
    from positions
    left join sessions
        on positions.session_id = sessions.session_id
    where
        positions.first_position != 1
        or positions.last_position != positions.n_tracks
        or positions.position_sum != positions.n_tracks * (positions.n_tracks + 1) / 2
        or sessions.n_tracks is null
        or sessions.n_tracks != positions.n_tracks

)

select * from final
