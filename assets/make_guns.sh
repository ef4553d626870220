#!/bin/sh
# Regenerates assets/guns/*.png: 64x64 8-bit grayscale silhouettes (black gun on white)
# rasterized from the game-icons.net set, as packaged on npm by Iconify.
#
# Needs: npm (to fetch the package), rsvg-convert (Debian librsvg2-bin) and python3
# (standard library only). Usage: sh assets/make_guns.sh [output-dir]
set -eu

here=$(cd "$(dirname "$0")" && pwd)
out=${1:-"$here/guns"}
size=64
package=@iconify-json/game-icons
# The icons, as the positional parameters ("$@") from here on.
set -- ak47 ak47u autogun blunderbuss bolter-gun crossed-pistols desert-eagle flamethrower \
    glock luger m3-grease-gun machine-gun minigun mp5 musket p90 pistol-gun ray-gun revolver \
    sawed-off-shotgun sentry-gun spectre-m4 thompson-m1 uzi water-gun winchester-rifle

for tool in npm rsvg-convert python3 tar; do
    command -v "$tool" >/dev/null 2>&1 || { echo "make_guns.sh: '$tool' not found" >&2; exit 1; }
done

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

(cd "$work" && npm pack --silent "$package" >/dev/null)
tar -xzf "$work"/*.tgz -C "$work"
mkdir -p "$out"

# Step 1: one standalone SVG per icon (python: reads the iconify JSON).
# Iconify icons carry only an SVG body fragment; the viewBox comes from the icon's own
# left/top/width/height or the file-wide defaults. fill="currentColor" becomes black.
python3 - "$work/package/icons.json" "$work/svg" "$@" <<'PY'
import json, os, sys
src, dst, names = sys.argv[1], sys.argv[2], sys.argv[3:]
data = json.load(open(src))
os.makedirs(dst, exist_ok=True)
for name in names:
    icon = data["icons"].get(name)
    if icon is None:
        sys.exit("make_guns.sh: icon '%s' is not in %s" % (name, src))
    left, top = icon.get("left", data.get("left", 0)), icon.get("top", data.get("top", 0))
    width = icon.get("width", data.get("width", 16))
    height = icon.get("height", data.get("height", 16))
    body = icon["body"].replace("currentColor", "#000000")
    svg = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="%g %g %g %g" '
           'width="%g" height="%g" fill="#000000">%s</svg>\n'
           % (left, top, width, height, width, height, body))
    with open(os.path.join(dst, name + ".svg"), "w") as f:
        f.write(svg)
PY

# Step 2: rasterize on white.
for name in "$@"; do
    rsvg-convert -w "$size" -h "$size" -b white -f png -o "$work/svg/$name.rgba.png" \
        "$work/svg/$name.svg"
done

# Step 3: RGBA PNG -> 8-bit grayscale PNG (tiny decoder/encoder on zlib, no imaging library).
python3 - "$work/svg" "$out" "$@" <<'PY'
import os, struct, sys, zlib

def read_png(path):
    blob = open(path, "rb").read()
    if blob[:8] != b"\x89PNG\r\n\x1a\n":
        sys.exit("make_guns.sh: %s is not a PNG" % path)
    pos, idat, hdr = 8, b"", None
    while pos < len(blob):
        length, kind = struct.unpack(">I4s", blob[pos:pos + 8])
        chunk = blob[pos + 8:pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            hdr = struct.unpack(">IIBBBBB", chunk)
        elif kind == b"IDAT":
            idat += chunk
    width, height, depth, color, _, _, interlace = hdr
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(color)
    if depth != 8 or channels is None or interlace:
        sys.exit("make_guns.sh: %s: unsupported PNG layout %r" % (path, hdr))
    raw, stride = zlib.decompress(idat), width * channels
    rows, prev = [], bytearray(stride)
    for y in range(height):
        base = y * (stride + 1)
        ftype, line = raw[base], bytearray(raw[base + 1:base + 1 + stride])
        for i in range(stride):  # undo the PNG scanline filter
            a = line[i - channels] if i >= channels else 0
            b, c = prev[i], prev[i - channels] if i >= channels else 0
            if ftype == 1: line[i] = (line[i] + a) & 255
            elif ftype == 2: line[i] = (line[i] + b) & 255
            elif ftype == 3: line[i] = (line[i] + (a + b) // 2) & 255
            elif ftype == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
                line[i] = (line[i] + pred) & 255
        rows.append(line)
        prev = line
    return width, height, channels, rows

def to_gray(width, channels, row):
    if channels <= 2:
        return bytes(row[0::channels])
    return bytes((299 * row[x * channels] + 587 * row[x * channels + 1]
                  + 114 * row[x * channels + 2] + 500) // 1000 for x in range(width))

def write_gray_png(path, width, height, rows):
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))
    raw = b"".join(b"\x00" + r for r in rows)
    png = (b"\x89PNG\r\n\x1a\n"
           + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
           + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(png)
    os.replace(tmp, path)

src, dst, names = sys.argv[1], sys.argv[2], sys.argv[3:]
for name in names:
    w, h, ch, rows = read_png(os.path.join(src, name + ".rgba.png"))
    write_gray_png(os.path.join(dst, name + ".png"), w, h, [to_gray(w, ch, r) for r in rows])
PY

version=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' \
    "$work/package/package.json")
echo "make_guns.sh: wrote $# icons from $package $version to $out"
