{#- The raw format's field rules, used by base_spotify__lines only (at the source boundary). -#}

{% macro raw_field_value(field, has_backslash) -%}
    {#- Unescape ('\"' -> '"', '\\' -> '\'; other backslashes stay as written), then trim surrounding
        spaces and tabs. Both steps are skipped on the (common) values that do not need them. -#}
    {%- set unescaped -%}
        case when {{ has_backslash }} then {{ unescape_backslashes(field) }} else {{ field }} end
    {%- endset -%}
    case
        when not ({{ is_trimmed(field) }})
            then {{ trim_blanks(unescaped) }}
        else {{ unescaped }}
    end
{%- endmacro %}


{% macro is_trimmed(field) -%}
    {#- true when the value has no surrounding space or tab (cheap: no copy of the value) -#}
    not (
        {{ starts_with(field, "' '") }} or {{ ends_with(field, "' '") }}
        or {{ starts_with(field, 'chr(9)') }} or {{ ends_with(field, 'chr(9)') }}
    )
{%- endmacro %}


{% macro control_character_class() -%}
    {#- Inside a regex character class: the C0 controls but tab, DEL and the C1 controls (Unicode
        category Cc minus tab). A line holding one is quarantined as 'control_character'. -#}
    \x00-\x08\x0a-\x1f\x7f-\x9f
{%- endmacro %}


{% macro control_character_pattern() -%}
    [{{ control_character_class() }}]
{%- endmacro %}


{% macro numbered_elements(relation, list_column, number_column, value_column) -%}
    {#- A select over the one-row relation: each element of the list with its 1-based number, and
        the list's size (n_elements). -#}
    {{ return(adapter.dispatch('numbered_elements', 'music_recsys')(relation, list_column, number_column, value_column)) }}
{%- endmacro %}

{% macro duckdb__numbered_elements(relation, list_column, number_column, value_column) -%}
    select
        unnest(range(1, len({{ list_column }}) + 1)) as {{ number_column }},
        unnest({{ list_column }}) as {{ value_column }},
        len({{ list_column }}) as n_elements
    from {{ relation }}
{%- endmacro %}

{% macro spark__numbered_elements(relation, list_column, number_column, value_column) -%}
    select
        cast(element_index + 1 as bigint) as {{ number_column }},
        {{ value_column }},
        n_elements
    from (
        select
            posexplode({{ list_column }}) as (element_index, {{ value_column }}),
            size({{ list_column }}) as n_elements
        from {{ relation }}
    ) as exploded
{%- endmacro %}


{% macro numbered_physical_lines(raw_file) -%}
    {#- A select over the one-row relation holding the file's text (column content): every physical
        line (the file cut on '\n' only) with its 1-based number, line_number and raw_line; the
        empty string after a final '\n' is not a line. -#}
    {{ return(adapter.dispatch('numbered_physical_lines', 'music_recsys')(raw_file)) }}
{%- endmacro %}

{% macro default__numbered_physical_lines(raw_file) -%}
    {#- Exact on any file: the whole text cut into one list, its elements numbered (one thread). -#}
    select
        line_number,
        raw_line
    from (
        {{ numbered_elements(
            '(select ' ~ split_lines('content') ~ ' as file_lines from ' ~ raw_file ~ ') as physical_lines',
            'file_lines', 'line_number', 'raw_line') }}
    ) as elements
    where not (line_number = n_elements and raw_line = '')
{%- endmacro %}

{% macro duckdb__numbered_physical_lines(raw_file) -%}
    {#- DuckDB's CSV reader as a line reader (no quote, no escape, a delimiter no line may hold) reads
        the file in parallel, in file order, an empty line as NULL; row_number() over () numbers the
        lines in that order. It breaks a line at a lone '\r' too, and cuts one at the delimiter
        (chr(30)): for a file holding either byte the exact list split above is used, so both give
        the same lines. A line longer than 16 MiB stops the build with DuckDB's message naming it.
        The numbered lines are a materialized CTE: row_number() over () runs on one thread and
        would otherwise hold every later step of its pipeline (the whole parse, the table's write)
        on that thread; materialized, only the read and the numbering do, and the parse reads the
        numbered lines in parallel.
        The var physical_lines_reader: auto (this choice) or list (always the list split). -#}
    {%- if execute and var('physical_lines_reader') == 'auto' and raw_file_is_line_readable() %}
    with physical_lines as materialized (
        select
            row_number() over () as line_number,
            coalesce(line, '') as raw_line
        from {{ raw_lines_reader() }}
    )

    select
        line_number,
        raw_line
    from physical_lines
    {%- else %}
    {{ default__numbered_physical_lines(raw_file) }}
    {%- endif %}
{%- endmacro %}

{% macro raw_lines_reader() -%}
    read_csv('{{ raw_csv_path() }}', columns = {'line': 'varchar'}, header = false, delim = chr(30),
        quote = '', escape = '', auto_detect = false, strict_mode = false, new_line = '\n',
        max_line_size = 16777216)
{%- endmacro %}

{% macro raw_file_is_line_readable() -%}
    {#- true when the raw file holds neither '\r' nor chr(30) (one pass over its bytes) -#}
    {%- set found = run_query(
        "select contains(content, chr(13)) or contains(content, chr(30)) from read_text('"
        ~ raw_csv_path() ~ "')").columns[0].values()[0] -%}
    {{ return(not found) }}
{%- endmacro %}
