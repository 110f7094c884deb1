-- One row: which dbt invocation built this warehouse, from which raw file, with which split vars.
-- The ml package records it with its models (provenance); it changes on every build by design.

with

raw_file as (

    select
        filename,
        size,
        last_modified
    from {{ source('spotify', 'playlists_csv') }}

),

final as (

    select
        '{{ invocation_id }}' as dbt_invocation_id,
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S") }}' as timestamp)
            as built_at,
        '{{ dbt_version }}' as dbt_version,
        raw_file.filename as raw_csv,
        raw_file.size as raw_csv_bytes,
        raw_file.last_modified as raw_csv_modified_at,
        '{{ var("split_seed") | string | trim }}' as split_seed,
        '{{ var("split_by") }}' as split_by,
        cast({{ var('train_share') | float }} as double) as train_share,
        cast({{ var('valid_share') | float }} as double) as valid_share,
        cast({{ var('holdout_share') | float }} as double) as holdout_share
    from raw_file

)

select * from final
