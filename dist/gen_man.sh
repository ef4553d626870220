#!/bin/sh
# Man pages from the commands' own --help text, so they never disagree with the binary:
# deconv.1 (the command list, environment, files) and one deconv-COMMAND.1 per command.
# Usage: gen_man.sh DECONV_BINARY OUTDIR VERSION DATADIR COMMAND...
set -eu
bin=$1 out=$2 version=$3 datadir=$4
shift 4
mkdir -p "$out"

# Text to roff: backslashes escaped first, minus signs as \- (so options copy as ASCII
# hyphens), a leading . or ' made literal.
roff_text() {
    sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e "s/^\\([.']\\)/\\\\\\&\\1/"
}

# printf, not echo: dash's echo would turn the \f of roff fonts into form feeds.
line() { printf '%s\n' "$@"; }

# Every command prints its help to stdout or stderr and exits 0 or 2 today; take what there is.
help_of() { "$bin" "$@" --help 2>&1 || true; }

top=$(help_of)
# "  train        train a model ..." in the top-level help gives the one-line description.
summary_of() {
    printf '%s\n' "$top" | sed -n "s/^  $1  *\\(.*\\)\$/\\1/p" | head -n 1
}

header() { # NAME-UPPER; the help text may hold UTF-8 (an em dash): say so for preconv
    line "'\\\" -*- coding: utf-8 -*-"
    printf '.TH %s 1 "" "deconv %s" "deconv manual"\n' "$1" "$version"
}

for cmd in "$@"; do
    page="$out/deconv-$cmd.1"
    help=$(help_of "$cmd")
    summary=$(summary_of "$cmd")
    [ -n "$summary" ] || summary="the $cmd command of deconv"
    usage=$(printf '%s\n' "$help" | sed -n 's/^[Uu]sage: *//p' | head -n 1)
    [ -n "$usage" ] || usage="deconv $cmd [options]"
    {
        header "DECONV-$(printf '%s' "$cmd" | tr '[:lower:]' '[:upper:]')"
        line '.SH NAME'
        printf 'deconv-%s \\- %s\n' "$cmd" "$(printf '%s\n' "$summary" | roff_text)"
        line '.SH SYNOPSIS'
        line '.nf'
        printf '%s\n' "$usage" | roff_text
        line '.fi'
        line '.SH DESCRIPTION'
        line "The text of \\fBdeconv $cmd \\-\\-help\\fR:"
        line '.PP'
        line '.nf'
        printf '%s\n' "$help" | roff_text
        line '.fi'
        line '.SH SEE ALSO'
        line '.BR deconv (1)'
    } >"$page.tmp"
    mv "$page.tmp" "$page"
done

page="$out/deconv.1"
{
    header DECONV
    line '.SH NAME'
    line 'deconv \- train CNNs on OpenCL or CPU, generate, explain, restore'
    line '.SH SYNOPSIS'
    line '.nf'
    line 'deconv COMMAND [options]'
    line 'deconv COMMAND \-\-help'
    line '.fi'
    line '.SH DESCRIPTION'
    line '.nf'
    printf '%s\n' "$top" | roff_text
    line '.fi'
    line '.SH COMMANDS'
    for cmd in "$@"; do
        line '.TP'
        printf '.BR deconv\\-%s (1)\n' "$cmd"
        summary_of "$cmd" | roff_text
    done
    line '.SH ENVIRONMENT'
    line '.TP'
    line '.B DECONV_CL_DIR'
    line 'load the OpenCL kernels from this folder instead of the copies built into the library'
    line '.TP'
    line '.B DECONV_CACHE_DIR'
    line 'where compiled OpenCL programs are cached (default \fI$XDG_CACHE_HOME/deconv\fR or'
    line '\fI~/.cache/deconv\fR); an empty value turns the cache off'
    line '.TP'
    line '.B DECONV_CONV'
    line 'CPU backend convolutions: \fBwinograd2\fR (F(2x2, 3x3)) or \fBgemm\fR (im2col + GEMM)'
    line 'instead of the default F(4x4, 3x3) Winograd for 3x3 stride\-1 layers'
    line '.SH FILES'
    line '.TP'
    printf '.I %s\n' "$(printf '%s\n' "$datadir" | roff_text)"
    line 'the bundled gun silhouettes (the default training data) and the pinned Fashion\-MNIST'
    line 'network that judges generated images'
} >"$page.tmp"
mv "$page.tmp" "$page"
