{#- Where the raw CSV is, and the checks that stop a build early when it is not what we expect. -#}

{% macro raw_csv_path() -%}
    {#- RAW_CSV (absolute from make); by hand the default is relative to dbt_project/, like the profile. -#}
    {{- return(env_var('RAW_CSV', '../data/raw/spotify_dataset.csv')) -}}
{%- endmacro %}


{% macro expected_raw_header() -%}
    {#- The real file's header, byte for byte: every name quoted, a space after each comma. -#}
    {{- return('"user_id", "artistname", "trackname", "playlistname"') -}}
{%- endmacro %}


{% macro check_raw_file() %}
    {#- on-run-start: a missing file, an empty file, a wrong header or a header without data lines stops
        the build here, with the file's path and what was expected, instead of failing later in SQL. -#}
    {{ return(adapter.dispatch('check_raw_file', 'music_recsys')()) }}
{% endmacro %}


{% macro duckdb__check_raw_file() %}
    {#- DuckDB reads the file in place (the source's external_location): check it with DuckDB. -#}
    {% if execute and flags.WHICH in ('build', 'run', 'test') %}
        {% set path = raw_csv_path() %}
        {% set hint = "set RAW_CSV to the Spotify playlists CSV (make data generates one)" %}
        {% if "'" in path or "{" in path or "}" in path %}
            {{ exceptions.raise_compiler_error(
                "raw file path " ~ path ~ " contains a quote or a brace, which the DuckDB source cannot take; move the file") }}
        {% endif %}
        {% set found = run_query("select count(*) from glob('" ~ path ~ "')").columns[0].values()[0] %}
        {% if found == 0 %}
            {{ exceptions.raise_compiler_error("raw file not found: " ~ path ~ " (" ~ hint ~ ")") }}
        {% endif %}
        {% set size = run_query("select size from read_blob('" ~ path ~ "')").columns[0].values()[0] %}
        {% if size == 0 %}
            {{ exceptions.raise_compiler_error(
                "raw file is empty: " ~ path ~ " (expected the header line " ~ expected_raw_header() ~ " and data lines)") }}
        {% endif %}
        {#- The first two physical lines, read as plain text (no quoting), cheaply even on a 1 GB file.
            parallel = false: the profile turns preserve_insertion_order off, and a parallel scan with
            a limit may then return lines from anywhere in the file. -#}
        {% set first_lines = run_query(
            "select line from read_csv('" ~ path ~ "', columns = {'line': 'varchar'}, header = false,"
            ~ " delim = chr(31), quote = '', escape = '', auto_detect = false, parallel = false,"
            ~ " strict_mode = false, new_line = '\\n') limit 2"
        ).columns[0].values() %}
        {% set header = (first_lines[0] or '').lstrip('\ufeff').rstrip('\r') %}
        {% if header != expected_raw_header() %}
            {{ exceptions.raise_compiler_error(
                "wrong header in raw file " ~ path ~ ": found " ~ (header[:200] | tojson)
                ~ ", expected " ~ (expected_raw_header() | tojson)) }}
        {% endif %}
        {% if first_lines | length < 2 %}
            {{ exceptions.raise_compiler_error(
                "raw file has a header but no data lines: " ~ path) }}
        {% endif %}
        {{ log("raw file " ~ path ~ ": " ~ size ~ " bytes, header ok", info=true) }}
    {% endif %}
    select 1
{% endmacro %}


{% macro spark__check_raw_file() %}
    {#- Spark: register the file as the source table (the whole file as one text value, like DuckDB's
        read_text, so lines keep their physical numbers), then check it through that table. A
        permanent table, not a temporary view: views of on-run-start do not survive into the models. -#}
    {% if execute and flags.WHICH in ('build', 'run', 'test') %}
        {% set path = raw_csv_path() %}
        {% set hint = "set RAW_CSV to the Spotify playlists CSV (make data generates one)" %}
        {% if "'" in path or "\\" in path %}
            {{ exceptions.raise_compiler_error(
                "raw file path " ~ path ~ " contains a quote or a backslash, which the Spark source cannot take; move the file") }}
        {% endif %}
        {% set schema = target.schema %}
        {% do run_query("create schema if not exists " ~ schema) %}
        {% do run_query("drop view if exists " ~ schema ~ ".playlists_csv") %}
        {% do run_query("drop table if exists " ~ schema ~ ".playlists_csv_text") %}
        {% do run_query(
            "create table " ~ schema ~ ".playlists_csv_text using text options (path '" ~ path
            ~ "', wholetext 'true')") %}
        {% do run_query(
            "create view " ~ schema ~ ".playlists_csv as select"
            ~ " _metadata.file_path as filename, value as content,"
            ~ " _metadata.file_size as size, _metadata.file_modification_time as last_modified"
            ~ " from " ~ schema ~ ".playlists_csv_text") %}
        {% set checked = run_query(
            "select count(*), coalesce(max(size), 0), max(substring_index(content, '\\n', 2))"
            ~ " from " ~ schema ~ ".playlists_csv") %}
        {% set found, size, first_lines = checked.rows[0][0], checked.rows[0][1], checked.rows[0][2] %}
        {% if found == 0 %}
            {{ exceptions.raise_compiler_error("raw file not found: " ~ path ~ " (" ~ hint ~ ")") }}
        {% endif %}
        {% if size == 0 %}
            {{ exceptions.raise_compiler_error(
                "raw file is empty: " ~ path ~ " (expected the header line " ~ expected_raw_header() ~ " and data lines)") }}
        {% endif %}
        {% set lines = first_lines.split('\n') %}
        {% set header = lines[0].lstrip('\ufeff').rstrip('\r') %}
        {% if header != expected_raw_header() %}
            {{ exceptions.raise_compiler_error(
                "wrong header in raw file " ~ path ~ ": found " ~ (header[:200] | tojson)
                ~ ", expected " ~ (expected_raw_header() | tojson)) }}
        {% endif %}
        {% if lines | length < 2 or (lines | length == 2 and lines[1] == '') %}
            {{ exceptions.raise_compiler_error("raw file has a header but no data lines: " ~ path) }}
        {% endif %}
        {{ log("raw file " ~ path ~ ": " ~ size ~ " bytes, header ok", info=true) }}
    {% endif %}
    select 1
{% endmacro %}
