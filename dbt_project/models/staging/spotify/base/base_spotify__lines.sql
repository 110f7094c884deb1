{{ config(materialized='table') }}

-- Every physical line of the raw file after the header: numbered, split into fields and judged.
-- DuckDB-only SQL lives here, at the source boundary. stg_spotify__playlist_tracks (reject_reason is
-- null) and rejected_lines (reject_reason is not null) are two filters of this table, so every line
-- lands in exactly one of them.

with

raw_file as (

    select content from {{ source('spotify', 'playlists_csv') }}

),

physical_lines as (

    -- Split on '\n' only: element N of this list is line N of the file, whatever the line holds
    -- (blank, a stray '\r', quotes), so the list index is the physical line number.
    select string_split(content, chr(10)) as file_lines from raw_file

),

numbered as (

    select
        unnest(range(1, len(file_lines) + 1)) as line_number,
        unnest(file_lines) as raw_line,
        len(file_lines) as n_elements
    from physical_lines

),

data_lines as (

    select
        line_number,
        raw_line,
        -- a file saved with CRLF endings: the '\r' belongs to the line break, not to the last field
        case when ends_with(raw_line, chr(13)) then left(raw_line, -1) else raw_line end as line_text
    from numbered
    where
        line_number > 1
        -- a final '\n' ends the last line; the empty string after it is not a line
        and not (line_number = n_elements and raw_line = '')

),

split_fields as (

    select
        line_number,
        raw_line,
        line_text,
        length(line_text) >= 2
        and starts_with(line_text, '"')
        and ends_with(line_text, '"') as is_quoted,
        contains(line_text, '\') as has_backslash,
        string_split(substring(line_text, 2, length(line_text) - 2), '","') as field_values
    from data_lines

),

strictness as (

    select
        *,
        len(field_values) as n_fields,
        -- The strict grammar: four quoted fields, inner quotes escaped with a backslash. Without a
        -- backslash a line is strict exactly when no split field holds a quote (cheap); with one,
        -- the full pattern decides.
        case
            when has_backslash
                then regexp_full_match(line_text, '"(?:[^"\\]|\\.)*"(?:,"(?:[^"\\]|\\.)*"){3}')
            else not (
                contains(field_values[1], '"') or contains(field_values[2], '"')
                or contains(field_values[3], '"') or contains(field_values[4], '"')
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
        {{ raw_field_value('field_values[1]', 'has_backslash') }} as user_id,
        {{ raw_field_value('field_values[2]', 'has_backslash') }} as artist_name,
        {{ raw_field_value('field_values[3]', 'has_backslash') }} as track_name,
        {{ raw_field_value('field_values[4]', 'has_backslash') }} as playlist_name
    from strictness

),

judged as (

    select
        *,
        case
            when line_text = '' then 'empty_line'
            -- NUL, a lone CR, ESC...: such bytes never reach a name (a CRLF's CR was removed above)
            when regexp_matches(line_text, '{{ control_character_pattern() }}') then 'control_character'
            when not is_quoted then 'not_quoted'
            when n_fields != 4 then 'wrong_field_count'
            when not regexp_full_match(user_id, '[0-9a-f]{32}') then 'invalid_user_id'
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
                    'the line holds the control character '
                    || printf('U+%04X', unicode(regexp_extract(line_text, '{{ control_character_pattern() }}')))
                    || ' at character '
                    || (length(regexp_extract(line_text, '^[^{{ control_character_class() }}]*')) + 1)
                    || ' (tab is the only control character a field may hold)'
            when 'not_quoted' then 'the line does not start and end with a double quote'
            when 'wrong_field_count'
                then n_fields || ' fields when split on "," (expected 4: user_id, artistname, trackname, playlistname)'
            when 'invalid_user_id'
                then 'user_id ' || to_json(left(user_id, 64)) || ' is not 32 lowercase hex characters'
            when 'empty_track_name' then 'trackname is empty: a row without a track cannot be identified'
            when 'empty_playlist_name' then 'playlistname is empty: the row cannot be placed in a playlist'
        end as reject_detail
    from judged

)

select * from final
