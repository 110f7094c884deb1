-- Lossless ingestion: staged rows + rejected lines = the data lines of the raw file (all lines but the
-- header). The file's lines are counted here independently of base_spotify__lines: newline bytes in
-- the whole file, plus a last line that has no final newline. Returns one row when the counts differ.

with

raw_file as (

    select content from {{ source('spotify', 'playlists_csv') }}

),

file_lines as (

    select
        {{ count_newlines('content') }}
        + case when content != '' and not {{ ends_with('content', 'chr(10)') }} then 1 else 0 end
        - 1 as n_data_lines
    from raw_file

),

staged as (

    select count(*) as n_staged from {{ ref('stg_spotify__playlist_tracks') }}

),

rejected as (

    select count(*) as n_rejected from {{ ref('rejected_lines') }}

),

final as (

    select
        file_lines.n_data_lines,
        staged.n_staged,
        rejected.n_rejected
    from file_lines
    cross join staged
    cross join rejected
    where staged.n_staged + rejected.n_rejected != file_lines.n_data_lines

)

select * from final
