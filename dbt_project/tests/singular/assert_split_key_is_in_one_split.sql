-- No leak across splits: every playlist (split_by = 'playlist') or every user (split_by = 'user') has
-- all its sessions in one split.

{%- set split_key = 'playlist_id' if var('split_by') == 'playlist' else 'user_id' %}

with

splits as (

    select * from {{ ref('ml_playlist_splits') }}

),

sessions as (

    select * from {{ ref('dim_playlists') }}

),

session_splits as (

    select distinct
        session_id,
        split
    from splits

),

final as (

    select
        sessions.{{ split_key }},
        count(distinct session_splits.split) as n_splits
    from session_splits
    inner join sessions
        on session_splits.session_id = sessions.session_id
    group by sessions.{{ split_key }}
    having count(distinct session_splits.split) > 1

)

select * from final
