-- The evaluation split: every (session, track) gets a split and a role. See the model docs for the
-- protocol. Deterministic: a function of the ids and var('split_seed') only.

{%- set split_key = 'playlist_id' if var('split_by') == 'playlist' else 'user_id' %}
{%- set seed = "'" ~ (var('split_seed') | string | trim) ~ "'" %}
{%- set train_share = var('train_share') | float %}
{%- set valid_share = var('valid_share') | float %}

with

playlist_tracks as (

    select * from {{ ref('fct_playlist_tracks') }}

),

sessions as (

    select * from {{ ref('int_playlist_sessions') }}

),

session_splits as (

    select
        session_id,
        n_tracks,
        {{ unit_interval_hash([split_key, id_separator(), seed]) }} as split_draw
    from sessions

),

assigned as (

    select
        session_id,
        n_tracks,
        case
            when split_draw < {{ train_share }} then 'train'
            when split_draw < {{ train_share + valid_share }} then 'valid'
            else 'test'
        end as split,
        -- held-out count: a share of the tracks, at least 1, leaving at least 2 seeds
        case
            when n_tracks >= {{ var('min_eval_tracks') | int }}
                then
                    least(
                        n_tracks - 2,
                        greatest(1, cast(round(n_tracks * {{ var('holdout_share') | float }}) as integer))
                    )
            else 0
        end as n_holdout
    from session_splits

),

session_tracks as (

    select
        playlist_tracks.session_id,
        playlist_tracks.track_id,
        assigned.split,
        assigned.n_holdout
    from playlist_tracks
    inner join assigned
        on playlist_tracks.session_id = assigned.session_id

),

evaluated_tracks as (

    -- a seeded shuffle of each evaluated session's tracks: the first n_holdout are held out
    select
        session_id,
        track_id,
        split,
        n_holdout,
        row_number() over (
            partition by session_id
            order by {{ short_id(['session_id', 'track_id', seed]) }}, track_id
        ) as draw_rank
    from session_tracks
    where split != 'train' and n_holdout > 0

),

final as (

    select
        session_id,
        track_id,
        split,
        case when split = 'train' then 'train' else 'unevaluated' end as role
    from session_tracks
    where split = 'train' or n_holdout = 0

    union all

    select
        session_id,
        track_id,
        split,
        case when draw_rank <= n_holdout then 'holdout' else 'seed' end as role
    from evaluated_tracks

)

select * from final
