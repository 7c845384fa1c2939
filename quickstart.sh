#!/usr/bin/env bash
# quickstart.sh - install what postcopyd needs, build it, and run it.
#
#   ./quickstart.sh demo [SIZE]   deps + build + a loopback postcopy migration over TLS
#   ./quickstart.sh test          deps + build + the whole test suite (ctest)
#   ./quickstart.sh deps          only install the Debian 12 packages
#   ./quickstart.sh build         deps + build
#
# Flavours (after the command): --asan (ASan+UBSan), --tsan, --fuzz (clang
# libFuzzer). Each builds in its own directory: build, build-asan, ...
# Runs as root on Debian 12 (uses sudo otherwise).
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")"

# Exactly the Debian 12 packages the build, the tests and the demo use.
DEPS=(
	build-essential
	clang
	cmake
	pkg-config
	git
	openssl
	libssl-dev
	libevent-dev
	libprotobuf-c-dev
	protobuf-c-compiler
	libvirt-dev
	libvirt0
	libsystemd-dev
	libxxhash-dev
	libcmocka-dev
	libclang-rt-14-dev
	systemd
	jq
	procps
	gnuplot-nox
	dpkg-dev
	file
	curl
	prometheus
	scdoc
	man-db
	bsdutils
	protobuf-compiler
	python3
	python3-protobuf
	lintian
	bash-completion
)

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

cmd_deps() {
	local missing=()
	for p in "${DEPS[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		say "dependencies: all ${#DEPS[@]} Debian packages already installed"
		return 0
	fi
	say "dependencies: installing ${#missing[@]} Debian packages: ${missing[*]}"
	as_root apt-get update -q
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

FLAVOUR=""
BUILD=build
CMAKE_FLAGS=()
CTEST_ARGS=()
set_flavour() {
	case "${1:-}" in
	"")	;;
	--asan)	BUILD=build-asan; CMAKE_FLAGS=(-DPCD_ASAN=ON) ;;
	--tsan)	BUILD=build-tsan; CMAKE_FLAGS=(-DPCD_TSAN=ON)
		CTEST_ARGS=(-L tsan) ;;	# the concurrency tests (label tsan)
	--fuzz)	BUILD=build-fuzz; CMAKE_FLAGS=(-DPCD_FUZZ=ON -DCMAKE_C_COMPILER=clang)
		CTEST_ARGS=(-L fuzz) ;;	# the fuzz build runs the fuzz targets
	*)	echo "unknown flavour '$1' (want --asan, --tsan or --fuzz)" >&2; exit 2 ;;
	esac
	FLAVOUR=${1:-}
}

cmd_build() {
	cmd_deps
	say "building in ./$BUILD ${FLAVOUR:+($FLAVOUR)}"
	cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${CMAKE_FLAGS[@]}" >/dev/null
	cmake --build "$BUILD" -j "$(nproc)"
}

cmd_test() {
	cmd_build
	say "running the test suite (ctest) in ./$BUILD"
	ctest --test-dir "$BUILD" --output-on-failure --timeout 900 -j "$(nproc)" "${CTEST_ARGS[@]}"
}

cmd_demo() {
	cmd_build
	if [ ! -x "$BUILD/client/postcopy-demo" ]; then
		echo "The migration demo (client/scripts/postcopy-demo) is not built yet: the data path has not landed." >&2
		echo "What exists runs in the test suite: ./quickstart.sh test" >&2
		exit 1
	fi
	say "loopback postcopy migration over TLS"
	"$BUILD/client/postcopy-demo" "$@"
}

cmd=${1:-}
shift || true
case "$cmd" in
deps)	cmd_deps ;;
build)	set_flavour "${1:-}"; cmd_build ;;
test)	set_flavour "${1:-}"; cmd_test ;;
demo)	cmd_demo "$@" ;;
*)	sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
