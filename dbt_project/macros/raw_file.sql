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
