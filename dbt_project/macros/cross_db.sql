{#- Cross-database primitives the models call where DuckDB and Spark SQL differ. Each is one
    adapter.dispatch: the duckdb__ form is the fast one the DuckDB build has always used, the spark__
    form says the same thing in Spark SQL (Java regexes, 0-based arrays, element_at, size). -#}

{% macro split_lines(text) -%}
    {#- The text cut on '\n' into a list: element N is physical line N. -#}
    {{ return(adapter.dispatch('split_lines', 'music_recsys')(text)) }}
{%- endmacro %}

{% macro duckdb__split_lines(text) -%}
    string_split({{ text }}, chr(10))
{%- endmacro %}

{% macro spark__split_lines(text) -%}
    {#- split takes a regex; limit -1 keeps the empty strings after the last '\n' -#}
    split({{ text }}, '\n', -1)
{%- endmacro %}


{% macro split_on(text, separator) -%}
    {#- The text cut on a literal separator (no regex) into a list. -#}
    {{ return(adapter.dispatch('split_on', 'music_recsys')(text, separator)) }}
{%- endmacro %}

{% macro duckdb__split_on(text, separator) -%}
    string_split({{ text }}, {{ separator }})
{%- endmacro %}

{% macro spark__split_on(text, separator) -%}
    split({{ text }}, concat('\\Q', {{ separator }}, '\\E'), -1)
{%- endmacro %}


{% macro list_element(list, index) -%}
    {#- The index-th element of a list, 1-based; null past the end. -#}
    {{ return(adapter.dispatch('list_element', 'music_recsys')(list, index)) }}
{%- endmacro %}

{% macro duckdb__list_element(list, index) -%}
    {{ list }}[{{ index }}]
{%- endmacro %}

{% macro spark__list_element(list, index) -%}
    try_element_at({{ list }}, {{ index }})
{%- endmacro %}


{% macro list_size(list) -%}
    {{ return(adapter.dispatch('list_size', 'music_recsys')(list)) }}
{%- endmacro %}

{% macro duckdb__list_size(list) -%}
    len({{ list }})
{%- endmacro %}

{% macro spark__list_size(list) -%}
    size({{ list }})
{%- endmacro %}


{% macro starts_with(text, prefix) -%}
    {{ return(adapter.dispatch('starts_with', 'music_recsys')(text, prefix)) }}
{%- endmacro %}

{% macro default__starts_with(text, prefix) -%}
    starts_with({{ text }}, {{ prefix }})
{%- endmacro %}

{% macro spark__starts_with(text, prefix) -%}
    startswith({{ text }}, {{ prefix }})
{%- endmacro %}


{% macro ends_with(text, suffix) -%}
    {{ return(adapter.dispatch('ends_with', 'music_recsys')(text, suffix)) }}
{%- endmacro %}

{% macro default__ends_with(text, suffix) -%}
    ends_with({{ text }}, {{ suffix }})
{%- endmacro %}

{% macro spark__ends_with(text, suffix) -%}
    endswith({{ text }}, {{ suffix }})
{%- endmacro %}


{% macro regex_full_match(text, pattern) -%}
    {#- true when the whole text matches the pattern (RE2 on DuckDB, Java regex on Spark: write the
        pattern in their common subset). -#}
    {{ return(adapter.dispatch('regex_full_match', 'music_recsys')(text, pattern)) }}
{%- endmacro %}

{% macro duckdb__regex_full_match(text, pattern) -%}
    regexp_full_match({{ text }}, '{{ pattern }}')
{%- endmacro %}

{% macro spark__regex_full_match(text, pattern) -%}
    ({{ text }} rlike '{{ "^(?:" ~ (pattern | replace("\\", "\\\\")) ~ ")\\\\z" }}')
{%- endmacro %}


{% macro regex_contains(text, pattern) -%}
    {{ return(adapter.dispatch('regex_contains', 'music_recsys')(text, pattern)) }}
{%- endmacro %}

{% macro duckdb__regex_contains(text, pattern) -%}
    regexp_matches({{ text }}, '{{ pattern }}')
{%- endmacro %}

{% macro spark__regex_contains(text, pattern) -%}
    ({{ text }} rlike '{{ pattern | replace("\\", "\\\\") }}')
{%- endmacro %}


{% macro regex_first(text, pattern) -%}
    {#- The first match of the pattern in the text ('' when none). -#}
    {{ return(adapter.dispatch('regex_first', 'music_recsys')(text, pattern)) }}
{%- endmacro %}

{% macro duckdb__regex_first(text, pattern) -%}
    regexp_extract({{ text }}, '{{ pattern }}')
{%- endmacro %}

{% macro spark__regex_first(text, pattern) -%}
    regexp_extract({{ text }}, '{{ "(" ~ (pattern | replace("\\", "\\\\")) ~ ")" }}', 1)
{%- endmacro %}


{% macro unescape_backslashes(text) -%}
    {#- '\"' -> '"' and '\\' -> '\'; any other backslash stays as written. -#}
    {{ return(adapter.dispatch('unescape_backslashes', 'music_recsys')(text)) }}
{%- endmacro %}

{% macro duckdb__unescape_backslashes(text) -%}
    regexp_replace({{ text }}, '\\(["\\])', '\1', 'g')
{%- endmacro %}

{% macro spark__unescape_backslashes(text) -%}
    regexp_replace({{ text }}, '\\\\(["\\\\])', '$1')
{%- endmacro %}


{% macro trim_blanks(text) -%}
    {#- Surrounding spaces and tabs removed. -#}
    {{ return(adapter.dispatch('trim_blanks', 'music_recsys')(text)) }}
{%- endmacro %}

{% macro duckdb__trim_blanks(text) -%}
    trim({{ text }}, ' ' || chr(9))
{%- endmacro %}

{% macro spark__trim_blanks(text) -%}
    btrim({{ text }}, concat(' ', chr(9)))
{%- endmacro %}


{% macro code_point_label(character) -%}
    {#- 'U+0000' for the first character of the text. -#}
    {{ return(adapter.dispatch('code_point_label', 'music_recsys')(character)) }}
{%- endmacro %}

{% macro duckdb__code_point_label(character) -%}
    printf('U+%04X', unicode({{ character }}))
{%- endmacro %}

{% macro spark__code_point_label(character) -%}
    format_string('U+%04X', ascii({{ character }}))
{%- endmacro %}


{% macro json_quoted(text) -%}
    {#- The text as a JSON string literal (quotes and control characters escaped). -#}
    {{ return(adapter.dispatch('json_quoted', 'music_recsys')(text)) }}
{%- endmacro %}

{% macro duckdb__json_quoted(text) -%}
    cast(to_json({{ text }}) as varchar)
{%- endmacro %}

{% macro spark__json_quoted(text) -%}
    substring(to_json(named_struct('v', {{ text }})), 6, length(to_json(named_struct('v', {{ text }}))) - 6)
{%- endmacro %}


{% macro count_newlines(text) -%}
    {#- How many '\n' the text holds. -#}
    {{ return(adapter.dispatch('count_newlines', 'music_recsys')(text)) }}
{%- endmacro %}

{% macro duckdb__count_newlines(text) -%}
    {#- the pieces of a split less one: on a 1 GB text a third of the time and half the memory of
        comparing its length with a copy without the '\n' -#}
    (len(string_split({{ text }}, chr(10))) - 1)
{%- endmacro %}

{% macro spark__count_newlines(text) -%}
    (octet_length({{ text }}) - octet_length(replace({{ text }}, chr(10), '')))
{%- endmacro %}


{% macro ordered_list_text(measure, order_by, delimiter) -%}
    {#- An aggregate: the measure's values joined by the delimiter, in order_by order. Spark's
        listagg ignores an order, so it sorts (order_by, measure) structs and keeps the measure. -#}
    {{ return(adapter.dispatch('ordered_list_text', 'music_recsys')(measure, order_by, delimiter)) }}
{%- endmacro %}

{% macro default__ordered_list_text(measure, order_by, delimiter) -%}
    {{ dbt.listagg(measure, delimiter, 'order by ' ~ order_by) }}
{%- endmacro %}

{% macro spark__ordered_list_text(measure, order_by, delimiter) -%}
    array_join(
        transform(array_sort(collect_list(struct({{ order_by }} as k, {{ measure }} as v))), x -> x.v),
        {{ delimiter }}
    )
{%- endmacro %}


{% macro staged_row_index(staged, rejected) -%}
    {#- A select over the staged rows (line_number, playlist_number, track_number) adding staged_index,
        each row's rank among the staged rows in file order (up to a constant): its line number less
        the rejected lines before it. `rejected` holds the rejected lines' line_number. -#}
    {{ return(adapter.dispatch('staged_row_index', 'music_recsys')(staged, rejected)) }}
{%- endmacro %}

{% macro default__staged_row_index(staged, rejected) -%}
    {#- a window over the whole table in file order (one partition) -#}
    select
        line_number,
        playlist_number,
        track_number,
        row_number() over (order by line_number) as staged_index
    from {{ staged }}
{%- endmacro %}

{% macro duckdb__staged_row_index(staged, rejected) -%}
    {#- An ASOF join finds, for every staged row, the last rejected line before it; that line's rank
        among the rejected lines is how many precede the row. The staged rows are never sorted as one
        sequence, and the rejected lines are few. -#}
    select
        {{ staged }}.line_number,
        {{ staged }}.playlist_number,
        {{ staged }}.track_number,
        {{ staged }}.line_number - coalesce(preceding.n_rejected, 0) as staged_index
    from {{ staged }}
    asof left join (
        select
            line_number,
            row_number() over (order by line_number) as n_rejected
        from {{ rejected }}
    ) as preceding
        on {{ staged }}.line_number > preceding.line_number
{%- endmacro %}


{% macro combination_hash(columns) -%}
    {#- A 64-bit hash of the columns' values (equal values, equal hashes; nulls included): a cheap
        pre-filter for exact checks, never an identity. -#}
    {{ return(adapter.dispatch('combination_hash', 'music_recsys')(columns)) }}
{%- endmacro %}

{% macro duckdb__combination_hash(columns) -%}
    hash({{ columns | join(', ') }})
{%- endmacro %}

{% macro spark__combination_hash(columns) -%}
    xxhash64({{ columns | join(', ') }})
{%- endmacro %}
