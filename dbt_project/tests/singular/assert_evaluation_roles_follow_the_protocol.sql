-- The evaluation protocol (ml_playlist_splits docs), checked per session:
-- train sessions: every track has role 'train';
-- valid/test sessions with >= min_eval_tracks tracks: >= 1 'holdout', >= 2 'seed', nothing else;
-- smaller valid/test sessions: every track 'unevaluated'.

with

splits as (

    select * from {{ ref('ml_playlist_splits') }}

),

per_session as (

    select
        session_id,
        min(split) as split,
        count(*) as n_tracks,
        sum(case when role = 'train' then 1 else 0 end) as n_train,
        sum(case when role = 'holdout' then 1 else 0 end) as n_holdout,
        sum(case when role = 'seed' then 1 else 0 end) as n_seed,
        sum(case when role = 'unevaluated' then 1 else 0 end) as n_unevaluated
    from splits
    group by session_id

),

final as (

    select * from per_session
    where
        case
            when split = 'train' then n_train != n_tracks
            when n_tracks >= {{ var('min_eval_tracks') | int }}
                then n_holdout < 1 or n_seed < 2 or n_holdout + n_seed != n_tracks
            else n_unevaluated != n_tracks
        end

)

select * from final
