{{ config(materialized='table') }}

-- Every physical line of the raw file after the header: numbered, split into fields and judged.
-- The only model that parses the raw format. Where DuckDB and Spark SQL differ it calls the dispatched
-- primitives of macros/cross_db.sql. stg_spotify__playlist_tracks (reject_reason is null) and
-- rejected_lines (reject_reason is not null) are two filters of this table, so every line lands in
-- exactly one of them.

{%- set strict_line = '"(?:[^"\\\\]|\\\\.)*"(?:,"(?:[^"\\\\]|\\\\.)*"){3}' %}

with

raw_file as (

    select content from {{ source('spotify', 'playlists_csv') }}

),

numbered as (

    -- Every physical line with its 1-based number: the file cut on '\n' only, whatever a line holds
    -- (blank, a stray '\r', quotes); the empty string after a final '\n' is not a line.
    {{ numbered_physical_lines('raw_file') }}

),

data_lines as (

    select
        line_number,
        raw_line,
        -- a file saved with CRLF endings: the '\r' belongs to the line break, not to the last field
        case
            when {{ ends_with('raw_line', 'chr(13)') }} then substring(raw_line, 1, length(raw_line) - 1)
            else raw_line
        end as line_text
    from numbered
    where line_number > 1

),

split_fields as (

    select
        line_number,
        raw_line,
        line_text,
        length(line_text) >= 2
        and {{ starts_with('line_text', "'\"'") }}
        and {{ ends_with('line_text', "'\"'") }} as is_quoted,
        contains(line_text, chr(92)) as has_backslash,
        {{ split_on('substring(line_text, 2, length(line_text) - 2)', "'\",\"'") }} as field_values
    from data_lines

),

strictness as (

    select
        *,
        {{ list_size('field_values') }} as n_fields,
        -- The strict grammar: four quoted fields, inner quotes escaped with a backslash. Without a
        -- backslash a line is strict exactly when no split field holds a quote (cheap); with one,
        -- the full pattern decides.
        case
            when has_backslash
                then {{ regex_full_match('line_text', strict_line) }}
            else not (
                contains({{ list_element('field_values', 1) }}, '"')
                or contains({{ list_element('field_values', 2) }}, '"')
                or contains({{ list_element('field_values', 3) }}, '"')
                or contains({{ list_element('field_values', 4) }}, '"')
            )
        end as is_strict
    from split_fields

),

unescaped as (

    select
        line_number,
        raw_line,
        line_text,
        is_quoted,
        is_strict,
        n_fields,
        {{ raw_field_value(list_element('field_values', 1), 'has_backslash') }} as user_id,
        {{ raw_field_value(list_element('field_values', 2), 'has_backslash') }} as artist_name,
        {{ raw_field_value(list_element('field_values', 3), 'has_backslash') }} as track_name,
        {{ raw_field_value(list_element('field_values', 4), 'has_backslash') }} as playlist_name
    from strictness

),

judged as (

    select
        *,
        case
            when line_text = '' then 'empty_line'
            -- NUL, a lone CR, ESC...: such bytes never reach a name (a CRLF's CR was removed above)
            when {{ regex_contains('line_text', control_character_pattern()) }} then 'control_character'
            when not is_quoted then 'not_quoted'
            when n_fields != 4 then 'wrong_field_count'
            when not {{ regex_full_match('user_id', '[0-9a-f]{32}') }} then 'invalid_user_id'
            when track_name = '' then 'empty_track_name'
            when playlist_name = '' then 'empty_playlist_name'
        end as reject_reason
    from unescaped

),

final as (

    select
        line_number,
        -- the raw text is kept for quarantined lines only (the staged fields say the rest)
        case when reject_reason is not null then raw_line end as raw_line,
        case when reject_reason is null then user_id end as user_id,
        case when reject_reason is null then artist_name end as artist_name,
        case when reject_reason is null then track_name end as track_name,
        case when reject_reason is null then playlist_name end as playlist_name,
        reject_reason is null and not is_strict as is_recovered,
        reject_reason,
        case reject_reason
            when 'empty_line' then 'the line is empty'
            when 'control_character'
                then
                    concat(
                        'the line holds the control character ',
                        {{ code_point_label(regex_first('line_text', control_character_pattern())) }},
                        ' at character ',
                        {{ dbt.cast(
                            'length(' ~ regex_first('line_text', '^[^' ~ control_character_class() ~ ']*') ~ ') + 1',
                            dbt.type_string()) }},
                        ' (tab is the only control character a field may hold)'
                    )
            when 'not_quoted' then 'the line does not start and end with a double quote'
            when 'wrong_field_count'
                then
                    concat(
                        {{ dbt.cast('n_fields', dbt.type_string()) }},
                        ' fields when split on "," (expected 4: user_id, artistname, trackname, playlistname)'
                    )
            when 'invalid_user_id'
                then
                    concat(
                        'user_id ',
                        {{ json_quoted('substring(user_id, 1, 64)') }},
                        ' is not 32 lowercase hex characters'
                    )
            when 'empty_track_name' then 'trackname is empty: a row without a track cannot be identified'
            when 'empty_playlist_name' then 'playlistname is empty: the row cannot be placed in a playlist'
        end as reject_detail
    from judged

)

select * from final
