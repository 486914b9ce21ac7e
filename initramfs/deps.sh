#!/bin/bash
# deps.sh: make a fresh Debian 12 machine ready to build and test abswitch.
#
#   1. installs the Debian packages the build and the tests use;
#   2. builds the static musl libraries the init links (json-c, libuuid,
#      libblkid, libdevmapper, nettle, libcryptsetup, libkmod) and the ones abctl
#      adds for registries (mbedtls, libcurl with HTTP and HTTPS only), from
#      Debian's own source packages, because Debian ships none of them static
#      for musl; and a static curl(1) for the install benchmark;
#   3. unpacks Debian's amd64 kernel and its modules for the tests, and
#      gives the e2e tests the same kernel with a zstd payload
#      (initramfs/testkernel.sh: 4-5 s less of every emulated boot).
#
# Results are cached outside the work tree under $ABSWITCH_CACHE (default
# /var/cache/abswitch), keyed by the source package versions and by the
# recipe version (RECIPE below), so the second run only checks and prints two paths.
# It writes $OUT (default build/deps.mk) for the Makefile to include.
#
# /etc/apt is never edited: source packages come through a private apt
# configuration with deb-src lines in the cache directory.
set -euo pipefail

CACHE=${ABSWITCH_CACHE:-/var/cache/abswitch}
OUT=$(realpath -m "${OUT:-build/deps.mk}")
JOBS=${JOBS:-$(nproc)}
here=$(cd "$(dirname "$0")" && pwd)
log() { printf 'deps: %s\n' "$*" >&2; }
trap 'log "failed at line $LINENO (rerun: a finished step is kept)"' ERR

PKGS=(musl-tools gcc make autoconf automake autopoint libtool gettext pkgconf
      cmake dpkg-dev binutils kmod cpio zstd dosfstools mtools gdisk fdisk
      cryptsetup-bin erofs-utils squashfs-tools qemu-system-x86 ovmf
      systemd-boot-efi cgpt python3-pytest python3-pytest-xdist libcmocka-dev clang cppcheck clang-tidy
      libblkid-dev libcryptsetup-dev libkmod-dev zlib1g-dev libcurl4-openssl-dev libmbedtls-dev nettle-dev
      docker-registry skopeo debootstrap openssl python3-cryptography
      sbsigntool swtpm swtpm-tools tpm2-tools efitools python3-yaml libssl-dev
      flex bison bc libelf-dev xz-utils)

missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null | grep -qx installed || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q >/dev/null
	# With recommends: what the tests were run with (qemu-system-data among them).
	apt-get install -y -q "${missing[@]}" >/dev/null
fi

# --- private apt configuration with deb-src -----------------------------------
APT=$CACHE/apt
mkdir -p "$APT/parts" "$APT/lists/partial" "$APT/cache/archives/partial"
for f in /etc/apt/sources.list.d/*.sources; do
	[ -e "$f" ] || continue
	sed 's/^Types:.*/Types: deb deb-src/' "$f" > "$APT/parts/$(basename "$f")"
done
if [ -s /etc/apt/sources.list ]; then
	sed -n 's/^deb \(.*\)/deb \1\ndeb-src \1/p' /etc/apt/sources.list > "$APT/parts/main.list"
fi
# The configuration in one file, for every apt call on these lists (and for
# bench/tbprof.py, which fetches QEMU's source through it).
printf 'Dir::Etc::SourceList "/dev/null";\nDir::Etc::SourceParts "%s";\nDir::State::Lists "%s";\nDir::Cache "%s";\n' \
	"$APT/parts" "$APT/lists" "$APT/cache" > "$APT/apt.conf.tmp"
mv "$APT/apt.conf.tmp" "$APT/apt.conf"
aptp() { apt-get -q -c "$APT/apt.conf" "$@"; }
apt_stamp=$APT/updated
if [ ! -e "$apt_stamp" ] || [ -n "$(find "$apt_stamp" -mmin +1440)" ]; then
	log "refreshing private apt lists"
	aptp update >/dev/null
	touch "$apt_stamp"
fi
srcver() { aptp-cache showsrc "$1" 2>/dev/null | sed -n 's/^Version: //p' | sort -V | tail -1; }
aptp-cache() { apt-cache -c "$APT/apt.conf" "$@"; }

SRCS=(json-c util-linux lvm2 nettle cryptsetup kmod mbedtls curl)
# Bump RECIPE whenever a build step below changes what it produces.
RECIPE=2
key=recipe$RECIPE
for s in "${SRCS[@]}"; do
	v=$(srcver "$s")
	[ -n "$v" ] || { log "no source package $s in the private apt lists"; exit 1; }
	key="$key${s}_$v"
done
key=$(printf '%s' "$key" | sha256sum | cut -c1-16)
PREFIX=$CACHE/musl-$key

build_libs() {
	local work=$CACHE/work-$key
	# A step that finished leaves a stamp, so a failed run resumes.
	mkdir -p "$work" "$PREFIX.tmp/include"
	local P=$PREFIX.tmp
	# musl-gcc searches no system include directory and musl ships no
	# kernel headers: give it the kernel's uapi headers only.
	mkdir -p "$P/kinc"
	ln -sfn /usr/include/linux "$P/kinc/linux"
	ln -sfn /usr/include/asm-generic "$P/kinc/asm-generic"
	ln -sfn /usr/include/x86_64-linux-gnu/asm "$P/kinc/asm"
	export CC="musl-gcc -isystem $P/kinc"
	export CFLAGS="-Os -fPIC -ffunction-sections -fdata-sections -isystem $P/kinc"
	export CPPFLAGS="-I$P/include -isystem $P/kinc"
	export LDFLAGS="-L$P/lib"
	export PKG_CONFIG_LIBDIR=$P/lib/pkgconfig
	export PKG_CONFIG_PATH=$P/lib/pkgconfig
	cd "$work"
	step() { [ -e "$P/.stamp-$1" ]; }
	done_step() { touch "$P/.stamp-$1"; }
	if ! step sources; then
		rm -rf ./*
		for s in "${SRCS[@]}"; do
			log "fetching source of $s"
			aptp source --download-only "$s" >/dev/null
		done
		for dsc in *.dsc; do dpkg-source -x "$dsc" >/dev/null; done
		done_step sources
	fi

	if ! step json-c; then
		log "building json-c"
		( cd json-c-*/ && mkdir -p b && cd b &&
		  cmake .. -DCMAKE_C_COMPILER=musl-gcc -DCMAKE_INSTALL_PREFIX="$P" \
			-DCMAKE_INSTALL_LIBDIR=lib -DBUILD_SHARED_LIBS=OFF -DBUILD_STATIC_LIBS=ON \
			-DBUILD_TESTING=OFF -DDISABLE_WERROR=ON -DCMAKE_BUILD_TYPE=MinSizeRel >/dev/null &&
		  make -j"$JOBS" >/dev/null && make install >/dev/null )
		done_step json-c
	fi

	if ! step util-linux; then
		log "building util-linux (libuuid, libblkid)"
		( cd util-linux-*/ &&
		  ./configure --prefix="$P" --disable-all-programs --enable-libuuid --enable-libblkid \
			--disable-shared --enable-static --without-udev --without-systemd \
			--without-python --disable-nls --disable-bash-completion >/dev/null &&
		  make -j"$JOBS" >/dev/null && make install >/dev/null )
		done_step util-linux
	fi

	if ! step lvm2; then
		log "building lvm2 (libdevmapper)"
		( cd lvm2-*/ &&
		  ./configure --prefix="$P" --enable-static_link --disable-udev_sync --disable-udev_rules \
			--disable-selinux --disable-readline --disable-blkid_wiping --disable-dmeventd \
			--disable-nls --with-thin=none --with-cache=none --disable-use-lvmlockd \
			--disable-use-lvmpolld --disable-systemd-journal --disable-app-machineid \
			--disable-notify-dbus --disable-sd-notify --disable-selinux >/dev/null &&
		  make -j"$JOBS" device-mapper >/dev/null &&
		  make -C libdm install_static install_include >/dev/null &&
		  make -C libdm install_pkgconfig >/dev/null 2>&1 || true )
		[ -e "$P/lib/libdevmapper.a" ] || { log "lvm2: libdevmapper.a was not built"; exit 1; }
		if [ ! -e "$P/lib/pkgconfig/devmapper.pc" ]; then
			mkdir -p "$P/lib/pkgconfig"
			printf 'prefix=%s\nName: devmapper\nDescription: dm\nVersion: 1.02\nLibs: -L%s/lib -ldevmapper\nCflags: -I%s/include\n' \
				"$P" "$P" "$P" > "$P/lib/pkgconfig/devmapper.pc"
		fi
		done_step lvm2
	fi

	# libcryptsetup's hashes, in userspace: its kernel backend needs AF_ALG
	# (two modules in every initramfs, and in every system abctl runs on)
	# before it does anything, even to set up a table it never hashes for.
	# No public-key part (that would want GMP), no documentation;
	# no fat build, whose CPU dispatch links every AES and GHASH variant in.
	if ! step nettle; then
		log "building nettle (libcryptsetup's crypto backend; the init's hashes)"
		( cd nettle-*/ &&
		  ./configure --prefix="$P" --libdir="$P/lib" --disable-shared \
			--disable-public-key --disable-documentation --disable-openssl --disable-fat >/dev/null &&
		  make -j"$JOBS" libnettle.a >/dev/null &&
		  make install-static install-headers >/dev/null )
		[ -e "$P/lib/libnettle.a" ] || { log "nettle: libnettle.a was not built"; exit 1; }
		done_step nettle
	fi

	if ! step cryptsetup; then
		log "building cryptsetup (libcryptsetup, nettle crypto backend)"
		( cd cryptsetup-*/ &&
		  { [ -x configure ] || autoreconf -fi >/dev/null 2>&1; } &&
		  ac_cv_lib_popt_poptConfigFileToString=yes ./configure --prefix="$P" \
			--disable-shared --enable-static --with-crypto_backend=nettle \
			--enable-internal-argon2 --disable-cryptsetup --disable-veritysetup \
			--disable-integritysetup --disable-cryptsetup-reencrypt --disable-ssh-token \
			--disable-external-tokens --disable-asciidoc --disable-udev --disable-selinux \
			--disable-nls --disable-libargon2 --disable-blkid >/dev/null &&
		  make -j"$JOBS" libcryptsetup.la >/dev/null &&
		  make install-libLTLIBRARIES install-includeHEADERS install-pkgconfigDATA >/dev/null )
		done_step cryptsetup
	fi

	if ! step kmod; then
		log "building kmod (libkmod, no compression, no dlopen)"
		# kmod's Debian source has no generated man/Makefile.in and wants
		# gtk-doc's make fragment, which only matters for its API docs.
		( cd kmod-*/ &&
		  touch libkmod/docs/gtk-doc.make && autoreconf -fi >/dev/null 2>&1 &&
		  ./configure --prefix="$P" --without-xz --without-zstd --without-zlib --without-openssl \
			--disable-manpages --disable-test-modules --disable-python --disable-tools \
			>/dev/null &&
		  make -j"$JOBS" libkmod/libkmod-internal.la shared/libshared.la >/dev/null &&
		  rm -f "$P/lib/libkmod.a" &&
		  ar rcs "$P/lib/libkmod.a" libkmod/.libs/*.o shared/.libs/*.o &&
		  install -m644 libkmod/libkmod.h "$P/include/" )
		done_step kmod
	fi

	if ! step mbedtls; then
		log "building mbedtls (TLS for libcurl; SHA-256 for abctl)"
		( cd mbedtls-*/ &&
		  make -j"$JOBS" lib CC="$CC" CFLAGS="$CFLAGS" >/dev/null &&
		  cp -r include/mbedtls include/psa "$P/include/" &&
		  cp library/libmbedtls.a library/libmbedx509.a library/libmbedcrypto.a "$P/lib/" )
		done_step mbedtls
	fi

	if ! step curl; then
		log "building curl (libcurl: HTTP and HTTPS over mbedtls; a static curl(1))"
		# The CA bundle default is Debian's; abctl also looks for other
		# distributions' and takes --ca.
		( cd curl-*/ &&
		  ./configure --prefix="$P" --disable-shared --enable-static --with-mbedtls="$P" \
			--without-zlib --without-brotli --without-zstd --without-libpsl --without-nghttp2 \
			--without-libidn2 --without-librtmp --without-libssh2 --without-libgsasl \
			--disable-ldap --disable-ldaps --disable-rtsp --disable-dict --disable-telnet \
			--disable-tftp --disable-pop3 --disable-imap --disable-smb --disable-smtp \
			--disable-gopher --disable-mqtt --disable-ftp --disable-ntlm --disable-manual \
			--disable-docs --disable-alt-svc --disable-hsts --disable-netrc --without-ca-path \
			--with-ca-bundle=/etc/ssl/certs/ca-certificates.crt >/dev/null &&
		  make -j"$JOBS" -C lib >/dev/null &&
		  make -C lib install >/dev/null && make -C include install >/dev/null &&
		  make -j"$JOBS" -C src curl LDFLAGS="$LDFLAGS -all-static" >/dev/null &&
		  mkdir -p "$P/bin" && install -m755 src/curl "$P/bin/curl" && strip "$P/bin/curl" )
		done_step curl
	fi

	cp /usr/lib/x86_64-linux-gnu/libz.a "$P/lib/"
	cp /usr/include/zlib.h /usr/include/zconf.h "$P/include/"
	rm -rf "$work"
	mv "$P" "$PREFIX"
}

if [ ! -e "$PREFIX/.done" ]; then
	t0=$(date +%s)
	build_libs
	touch "$PREFIX/.done"
	log "static libraries built in $(( $(date +%s) - t0 )) s: $PREFIX"
fi

# --- OpenSSL's libcrypto, for abctl's Authenticode check -------------------------
# PKCS#7 and X.509 chain checks for UKI signatures (abctl/signature.c): the
# library sbsigntool and EDK2's own DxeImageVerificationLib use. Only abctl
# links it, never the init. Its own directory and key, so that adding it or
# changing its recipe rebuilds only it.
OPENSSL_RECIPE=2
okey() { printf 'recipe%sopenssl_%s' "$OPENSSL_RECIPE" "$1" | sha256sum | cut -c1-16; }

# Builds openssl version $1 into $CACHE/openssl-$(okey $1) (called from
# "||", where errexit is off: every step returns its failure); 2 when its
# source cannot be downloaded (a mirror that lists a version it does not
# serve yet), so the caller tries the next one.
build_openssl() {
	local v=$1 k; k=$(okey "$1")
	local work=$CACHE/work-openssl-$k P=$CACHE/openssl-$k.tmp
	rm -rf "$work" "$P"
	mkdir -p "$work" "$P/kinc" "$P/lib" "$P/include"
	ln -sfn /usr/include/linux "$P/kinc/linux"
	ln -sfn /usr/include/asm-generic "$P/kinc/asm-generic"
	ln -sfn /usr/include/x86_64-linux-gnu/asm "$P/kinc/asm"
	log "fetching source of openssl $v"
	if ! ( cd "$work" && aptp source --download-only "openssl=$v" >/dev/null 2>&1 ); then
		log "openssl $v: its source is not on the mirror"
		rm -rf "$work" "$P"
		return 2
	fi
	( cd "$work" && dpkg-source -x ./*.dsc >/dev/null 2>&1 ) || return 1
	log "building openssl $v (libcrypto only, static, musl)"
	# no-async: musl has no makecontext; no-dso/no-engine/no-module: a
	# static binary cannot dlopen; no-afalgeng: no AF_ALG engine. The rest
	# is size (abctl travels in every slot image): no TLS, no ciphers or
	# digests a UEFI signature cannot use, no hand-written assembly (its
	# tables are not dropped by --gc-sections; C hashes a UKI fast
	# enough). RSA and EC signatures, SHA-1/2, X.509 and PKCS#7 stay.
	( cd "$work"/openssl-*/ &&
	  CC="musl-gcc -isystem $P/kinc" ./Configure linux-x86_64 --prefix=/nonexistent --openssldir=/etc/ssl \
		no-shared no-tests no-engine no-afalgeng no-async no-dso no-module no-ui-console no-asm \
		no-legacy no-aria no-bf no-blake2 no-camellia no-cast no-chacha no-cms no-comp no-ct no-des \
		no-dgram no-dh no-dsa no-gost no-idea no-md4 no-mdc2 no-ocb no-ocsp no-poly1305 no-rc2 no-rc4 \
		no-rmd160 no-scrypt no-seed no-siphash no-siv no-sm2 no-sm3 no-sm4 no-sock no-srp no-srtp \
		no-ssl3 no-tls no-dtls no-ts no-whirlpool no-cmp no-ktls no-psk no-rfc3779 \
		-Os -ffunction-sections -fdata-sections >/dev/null &&
	  make -j"$JOBS" build_generated >/dev/null &&
	  make -j"$JOBS" libcrypto.a >/dev/null &&
	  cp libcrypto.a "$P/lib/" && cp -r include/openssl "$P/include/" ) || return 1
	rm -rf "$work"
	touch "$P/.done"
	mv "$P" "$CACHE/openssl-$k"
}

OPENSSL_PREFIX=
for ov in $(aptp-cache showsrc openssl 2>/dev/null | sed -n 's/^Version: //p' | sort -Vr); do
	if [ -e "$CACHE/openssl-$(okey "$ov")/.done" ]; then
		OPENSSL_PREFIX=$CACHE/openssl-$(okey "$ov")
		break
	fi
	t0=$(date +%s)
	rc=0
	build_openssl "$ov" || rc=$?
	[ $rc = 2 ] && continue
	[ $rc = 0 ] || exit $rc
	OPENSSL_PREFIX=$CACHE/openssl-$(okey "$ov")
	log "static libcrypto built in $(( $(date +%s) - t0 )) s: $OPENSSL_PREFIX"
	break
done
[ -n "$OPENSSL_PREFIX" ] || { log "no openssl source package could be fetched"; exit 1; }

# --- the test kernel ------------------------------------------------------------
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/.*Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -1)
if [ -z "$kpkg" ]; then
	apt-get update -q >/dev/null
	kpkg=$(apt-cache depends linux-image-amd64 | sed -n 's/.*Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -1)
fi
kver=${kpkg#linux-image-}
kvers=$(apt-cache show "$kpkg" | sed -n 's/^Version: //p' | sort -V | tail -1)
KDIR=$CACHE/kernel-$kver-$kvers
if [ ! -e "$KDIR/.done" ]; then
	log "unpacking $kpkg $kvers"
	rm -rf "$KDIR" "$KDIR.tmp"
	mkdir -p "$KDIR.tmp/deb"
	( cd "$KDIR.tmp/deb" && apt-get download -q -o APT::Sandbox::User=root "$kpkg=$kvers" >/dev/null )
	dpkg -x "$KDIR.tmp"/deb/*.deb "$KDIR.tmp/root"
	rm -rf "$KDIR.tmp/deb"
	depmod -b "$KDIR.tmp/root" "$kver"
	mv "$KDIR.tmp" "$KDIR"
	touch "$KDIR/.done"
fi

# The e2e tests' image of the same kernel: its payload zstd-compressed, not XZ
# (initramfs/testkernel.sh says why and what it checks). Keyed by the recipe.
TEST_KERNEL_IMAGE=$KDIR/test-$(sha256sum "$here/testkernel.sh" | cut -c1-12)/vmlinuz-$kver
if [ ! -e "$TEST_KERNEL_IMAGE" ]; then
	# Not the musl build's environment (CC, CFLAGS, pkg-config paths) nor
	# the calling make's: kbuild and objtool's build read them.
	if ! env -u CC -u CFLAGS -u CPPFLAGS -u LDFLAGS -u PKG_CONFIG_LIBDIR -u PKG_CONFIG_PATH \
		-u MAKEFLAGS -u MFLAGS -u MAKELEVEL JOBS="$JOBS" \
		"$here/testkernel.sh" "$KDIR/root/boot/vmlinuz-$kver" "$KDIR/root/boot/config-$kver" \
		"$TEST_KERNEL_IMAGE"; then
		log "WARNING: no zstd image of $kver (see above): the e2e tests boot Debian's image as shipped," \
		    "4-5 s slower each boot if it is XZ; rm build/deps.mk and make deps to retry"
		TEST_KERNEL_IMAGE=$KDIR/root/boot/vmlinuz-$kver
	fi
	# Images an older recipe made.
	for d in "$KDIR"/test-*; do
		[ "$d" = "$(dirname "$TEST_KERNEL_IMAGE")" ] || rm -rf "$d"
	done
fi

mkdir -p "$(dirname "$OUT")"
cat > "$OUT.tmp" <<MK
# written by initramfs/deps.sh
MUSL_PREFIX := $PREFIX
OPENSSL_PREFIX := $OPENSSL_PREFIX
KERNEL_ROOT := $KDIR/root
KERNEL_VERSION := $kver
KERNEL_IMAGE := $KDIR/root/boot/vmlinuz-$kver
TEST_KERNEL_IMAGE := $TEST_KERNEL_IMAGE
APT_CONF := $APT/apt.conf
MK
mv "$OUT.tmp" "$OUT"
log "ok: libs $PREFIX, kernel $kver"
