#!/bin/sh
# Bash completion for deconv from the commands' own --help text: the commands, each
# command's long options, the values of options whose help lists them (--model
# complete|vae|...), and the methods of a command whose usage takes a METHOD (visualize).
# Anything else completes as a file name. Usage: gen_completion.sh DECONV_BINARY OUT COMMAND...
set -eu
bin=$1 out=$2
shift 2

help_of() { "$bin" "$@" --help 2>&1 || true; }
# "--model complete|vae|..." : a lower-case first value (not FOLDER|IDX), then any others
first_value='[a-z0-9][a-zA-Z0-9:.-]*'
other_value='[a-zA-Z0-9][a-zA-Z0-9:.-]*'
words() { tr '\n' ' ' | sed -e 's/  */ /g' -e 's/^ //' -e 's/ $//'; }

{
    echo '# bash completion for deconv, generated from "deconv COMMAND --help".'
    printf '_deconv_commands="%s"\n\n' "$*"

    echo '_deconv_options() {'
    echo '    case "$1" in'
    for cmd in "$@"; do
        help=$(help_of "$cmd")
        long=$(printf '%s\n' "$help" | grep -oE -e '--[a-z0-9][a-z0-9-]*' || true)
        short=$(printf '%s\n' "$help" | grep -oE -e '(^|[^a-zA-Z0-9-])-[a-zA-Z]([^a-zA-Z0-9-]|$)' |
                    grep -oE -e '-[a-zA-Z]' || true)
        opts=$(printf -- '--help\n%s\n%s\n' "$long" "$short" | grep . | sort -u | words)
        printf '    %s) echo "%s" ;;\n' "$cmd" "$opts"
    done
    echo '    esac'
    echo '}'
    echo

    echo '# The values an option takes, where the help lists them as a|b|c.'
    echo '_deconv_values() {'
    echo '    case "$1 $2" in'
    for cmd in "$@"; do
        help_of "$cmd" |
            grep -oE -e "--[a-z0-9][a-z0-9-]* $first_value(\\|$other_value)+" |
            sort -u -k1,1 |
            while read -r opt values; do
                # placeholders such as opencl:P:D are left out
                vals=$(printf '%s\n' "$values" | tr '|' '\n' | grep -v '[A-Z]' | words)
                printf '    "%s %s") echo "%s" ;;\n' "$cmd" "$opt" "$vals"
            done
    done
    echo '    esac'
    echo '}'
    echo

    echo '# The first word after a command that takes a METHOD.'
    echo '_deconv_methods() {'
    echo '    case "$1" in'
    for cmd in "$@"; do
        help=$(help_of "$cmd")
        if printf '%s\n' "$help" | grep -q "deconv $cmd METHOD"; then
            # "  deconvnet  Zeiler & Fergus ..." lines of the METHOD list
            methods=$(printf '%s\n' "$help" | sed -n 's/^  \([a-z][a-z0-9]*\)  .*/\1/p' | words)
            printf '    %s) echo "%s" ;;\n' "$cmd" "$methods"
        fi
    done
    echo '    esac'
    echo '}'
    echo
    cat <<'BASH'
_deconv() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    COMPREPLY=()
    if [ "$COMP_CWORD" -eq 1 ]; then
        COMPREPLY=($(compgen -W "$_deconv_commands --help" -- "$cur"))
        return
    fi
    local cmd=${COMP_WORDS[1]} values
    values=$(_deconv_values "$cmd" "$prev")
    if [ -n "$values" ]; then
        COMPREPLY=($(compgen -W "$values" -- "$cur"))
    elif [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_deconv_options "$cmd")" -- "$cur"))
    elif [ "$COMP_CWORD" -eq 2 ] && [ -n "$(_deconv_methods "$cmd")" ]; then
        COMPREPLY=($(compgen -W "$(_deconv_methods "$cmd")" -- "$cur"))
    fi
    # nothing matched: -o default falls back to file names
}
complete -o default -F _deconv deconv
BASH
} >"$out.tmp"
mv "$out.tmp" "$out"
