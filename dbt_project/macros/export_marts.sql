{#- The marts leave the warehouse as Parquet: the contract between any warehouse (DuckDB, Spark) and
    training. `dbt run-operation export_marts --args '{out_dir: /abs/dir}' [--target spark]` writes one
    folder of Parquet files per relation, <out_dir>/<relation>/*.parquet, whatever the target; ml
    reads them with ml.marts_parquet. -#}

{% macro exported_relations() -%}
    {{ return(['fct_playlist_tracks', 'dim_playlists', 'dim_tracks', 'dim_artists', 'ml_playlist_splits',
               'rejected_lines']) }}
{%- endmacro %}


{% macro export_marts(out_dir) %}
    {% if "'" in out_dir %}
        {{ exceptions.raise_compiler_error("export_marts: out_dir " ~ out_dir ~ " contains a quote") }}
    {% endif %}
    {% for name in exported_relations() %}
        {% set relation = adapter.get_relation(database=target.database, schema=target.schema, identifier=name) %}
        {% if relation is none %}
            {{ exceptions.raise_compiler_error(
                "export_marts: relation " ~ name ~ " is missing from the " ~ target.name
                ~ " warehouse (run dbt build first)") }}
        {% endif %}
        {% do run_query(export_relation_sql(relation, out_dir ~ '/' ~ name)) %}
        {{ log("exported " ~ name ~ " to " ~ out_dir ~ "/" ~ name ~ "/", info=true) }}
    {% endfor %}
{% endmacro %}


{% macro export_relation_sql(relation, folder) -%}
    {{ return(adapter.dispatch('export_relation_sql', 'music_recsys')(relation, folder)) }}
{%- endmacro %}

{% macro duckdb__export_relation_sql(relation, folder) -%}
    copy (select * from {{ relation }}) to '{{ folder }}'
    (format parquet, per_thread_output true, overwrite true)
{%- endmacro %}

{% macro spark__export_relation_sql(relation, folder) -%}
    insert overwrite directory '{{ folder }}' using parquet select * from {{ relation }}
{%- endmacro %}
