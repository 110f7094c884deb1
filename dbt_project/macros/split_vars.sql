{% macro check_split_vars() %}
    {#- on-run-start: bad split vars stop the build with the var's name, not a wrong split. -#}
    {% if execute %}
        {% set train = var('train_share') | float %}
        {% set valid = var('valid_share') | float %}
        {% set holdout = var('holdout_share') | float %}
        {% if var('split_by') not in ('playlist', 'user') %}
            {{ exceptions.raise_compiler_error("var split_by must be 'playlist' or 'user', got " ~ (var('split_by') | tojson)) }}
        {% endif %}
        {% if train < 0 or valid < 0 or train + valid > 1 %}
            {{ exceptions.raise_compiler_error(
                "vars train_share (" ~ train ~ ") and valid_share (" ~ valid ~ ") must be >= 0 with a sum <= 1") }}
        {% endif %}
        {% if holdout <= 0 or holdout >= 1 %}
            {{ exceptions.raise_compiler_error("var holdout_share must be in (0, 1), got " ~ holdout) }}
        {% endif %}
        {% if (var('min_eval_tracks') | int) < 3 %}
            {{ exceptions.raise_compiler_error("var min_eval_tracks must be >= 3 (1 held out, 2 seeds)") }}
        {% endif %}
        {% if (var('split_seed') | string) | trim == '' %}
            {{ exceptions.raise_compiler_error("var split_seed is empty (set SEED or --vars)") }}
        {% endif %}
    {% endif %}
    select 1
{% endmacro %}
