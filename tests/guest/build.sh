#!/usr/bin/env bash
# Builds the kernel-ZFS test guest: a Debian bookworm root made from Debian's own packages, with
# OpenZFS (zfs-dkms, zfsutils-linux from bookworm-backports) compiled for the guest's kernel.
#
# The result is cached under $GUEST_CACHE (default /var/cache/smartos-images-guest), keyed by the
# hash of this script and of the package versions the mirror offers, as
#   <key>.tar.zst   root.img + vmlinuz + initrd.img + id_ed25519 (+ .pub), zstd-compressed
#   <key>/          the same files, unpacked, ready for boot.sh
#   current         the key of the last good build
# A warm cache is reused as it is; a cache tarball without its directory is unpacked. Prints the
# directory of the ready guest on its last line of output. Runs as root, unattended; whatever it
# mounts is unmounted on exit, failure included.
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
CACHE="${GUEST_CACHE:-/var/cache/smartos-images-guest}"
SUITE=bookworm
ROOT_FREE_MB="${GUEST_ROOT_FREE_MB:-768}"
# pigz, bzip2, xz-utils: the decompressors an import pipes its stream through when the host has them (as a
# SmartOS platform does); curl: the shell pipeline the import benchmark compares the module with.
BASE_PACKAGES="linux-image-amd64 linux-headers-amd64 systemd-sysv udev kmod openssh-server python3 gzip pigz bzip2 xz-utils curl initramfs-tools"
ZFS_PACKAGES="zfs-dkms zfsutils-linux"

log() { printf '%s guest-build: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

WORK=""
ROOT=""
CHILD=""
MOUNTS=()

# Runs a long step as a background job and waits for it, so that a TERM or INT (make's timeout, ^C)
# reaches the trap at once instead of after the step.
step() {
  "$@" &
  CHILD=$!
  local rc=0
  wait "$CHILD" || rc=$?
  CHILD=""
  return "$rc"
}

# Unmounts what the build mounted (in reverse order) and removes its work directory, failure included.
# shellcheck disable=SC2317  # the EXIT trap calls it
cleanup() {
  local i p rc=$?
  [ -n "$WORK" ] || return 0
  # What still runs: the step the signal interrupted, and every process inside the chroot.
  if [ -n "$CHILD" ]; then kill -TERM "$CHILD" 2>/dev/null || true; fi
  if [ -n "$ROOT" ] && [ -d "$ROOT" ]; then
    for p in /proc/[0-9]*; do
      if [ "$(readlink "$p/root" 2>/dev/null)" = "$ROOT" ]; then kill -KILL "${p#/proc/}" 2>/dev/null || true; fi
    done
    sleep 1
  fi
  for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
    umount "${MOUNTS[i]}" 2>/dev/null || umount -l "${MOUNTS[i]}" 2>/dev/null || true
  done
  if grep -q " $WORK/" /proc/mounts; then
    log "warning: still mounted under $WORK"
  else
    rm -rf "$WORK"
  fi
  [ "$rc" = 0 ] || log "failed (exit $rc)"
}

# Everything runs from main(): bash reads a function whole before it runs it, so an edit of this
# file during a build cannot change the build half-way.
main() {
  [ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot, mounts)"
  for tool in debootstrap zstd mkfs.ext4 apt-get apt-cache ssh-keygen flock; do
    command -v "$tool" >/dev/null || die "$tool is missing: run 'make system-deps'"
  done

  # The host's Debian mirrors (deb822 or one-line sources); deb.debian.org when none is found.
  host_uri() {  # $1: path suffix of the archive (debian or debian-security)
    local uri
    uri="$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list 2>/dev/null |
      grep -Eo 'https?://[^ ]+' | sed 's,/*$,,' | grep -E "/$1\$" | head -n 1 || true)"
    printf '%s\n' "${uri:-http://deb.debian.org/$1}"
  }
  MIRROR="${GUEST_MIRROR:-$(host_uri debian)}"
  SECURITY="${GUEST_SECURITY_MIRROR:-$(host_uri debian-security)}"

  sources_list() {
    printf 'deb %s %s main\n' "$MIRROR" "$SUITE"
    printf 'deb %s %s-updates main\n' "$MIRROR" "$SUITE"
    printf 'deb %s %s-security main\n' "$SECURITY" "$SUITE"
    printf 'deb %s %s-backports main contrib\n' "$MIRROR" "$SUITE"
  }

  mkdir -p "$CACHE"
  exec 9>"$CACHE/.lock"
  flock -w 3600 9 || die "another build holds $CACHE/.lock"

  # The key: these scripts, the mirror, and the versions the mirror offers for what goes in.
  APTDIR="$CACHE/apt"
  mkdir -p "$APTDIR/lists/partial" "$APTDIR/archives/partial"
  sources_list >"$APTDIR/sources.list"
  APTOPTS=(-o "Dir::Etc::SourceList=$APTDIR/sources.list" -o "Dir::Etc::SourceParts=/nonexistent"
    -o "Dir::State::Lists=$APTDIR/lists" -o "Dir::Cache::Archives=$APTDIR/archives"
    -o "Dir::Cache::pkgcache=" -o "Dir::Cache::srcpkgcache=" -o "APT::Sandbox::User=root")
  if ! timeout 600 apt-get "${APTOPTS[@]}" -qq update >&2; then
    # Offline: the last good guest still serves, as its packages were current when it was built.
    last="$(cat "$CACHE/current" 2>/dev/null || true)"
    if [ -n "$last" ] && [ -s "$CACHE/$last/root.img" ]; then
      log "warning: apt-get update against $MIRROR failed; using the last guest built, $last"
      echo "$CACHE/$last"
      exit 0
    fi
    die "apt-get update against $MIRROR failed"
  fi
  # shellcheck disable=SC2086
  versions="$(apt-cache "${APTOPTS[@]}" madison $BASE_PACKAGES $ZFS_PACKAGES | sort)"
  [ -n "$versions" ] || die "the mirror lists none of the guest's packages"
  grep -q '^ *zfs-dkms ' <<<"$versions" || die "zfs-dkms is not on $MIRROR $SUITE-backports contrib"
  KEY="$( { cat "$HERE/build.sh"; printf '%s\n%s\n' "$MIRROR" "$versions"; } | sha256sum | cut -c1-16)"
  READY="$CACHE/$KEY"
  TARBALL="$CACHE/$KEY.tar.zst"

  ready_ok() {
    [ -s "$READY/root.img" ] && [ -s "$READY/vmlinuz" ] && [ -s "$READY/initrd.img" ] && [ -s "$READY/id_ed25519" ]
  }

  if ready_ok; then
    log "cached guest $KEY is ready"
    echo "$KEY" >"$CACHE/current"
    echo "$READY"
    exit 0
  fi

  WORK="$(mktemp -d "$CACHE/build.XXXXXX")"
  ROOT="$WORK/root"
  trap cleanup EXIT
  trap 'log "interrupted"; exit 130' INT TERM

  if [ -s "$TARBALL" ]; then
    log "unpacking cached $TARBALL"
    zstd -dc "$TARBALL" | tar -xSf - -C "$WORK"
  else
    t0=$SECONDS
    log "building guest $KEY from $MIRROR (about 7 minutes on 2 cores)"
    step timeout 900 debootstrap --variant=minbase "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
      { tail -n 20 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }
    log "debootstrap done ($((SECONDS - t0)) s)"

    mnt() { mount "$@" && MOUNTS+=("${*: -1}"); }
    mnt -t proc proc "$ROOT/proc"
    mnt -t sysfs sysfs "$ROOT/sys"
    mnt --bind /dev "$ROOT/dev"
    mnt --bind /dev/pts "$ROOT/dev/pts"

    sources_list >"$ROOT/etc/apt/sources.list"
    printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"  # no service starts in the chroot
    chmod 755 "$ROOT/usr/sbin/policy-rc.d"
    # A small initramfs: only what finds an ext4 root on virtio.
    mkdir -p "$ROOT/etc/initramfs-tools/conf.d"
    echo 'MODULES=list' >"$ROOT/etc/initramfs-tools/conf.d/smartos-images-guest"
    in_root() {
      chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive "$@"
    }
    apt_in_root() {
      step timeout 1800 chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive apt-get -y -q -o Dpkg::Options::=--force-confold \
        --no-install-recommends "$@" >>"$WORK/apt.log" 2>&1 || { tail -n 30 "$WORK/apt.log" >&2; die "apt-get $* failed"; }
    }
    apt_in_root update
    apt_in_root install initramfs-tools kmod
    printf '%s\n' virtio_pci virtio_blk virtio_net ext4 >>"$ROOT/etc/initramfs-tools/modules"
    # shellcheck disable=SC2086
    apt_in_root install $BASE_PACKAGES
    log "base packages done ($((SECONDS - t0)) s)"
    KVER="$(find "$ROOT/lib/modules" -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -n 1)"
    [ -n "$KVER" ] || die "no kernel in the guest"
    # shellcheck disable=SC2086
    apt_in_root install -t "$SUITE-backports" $ZFS_PACKAGES
    if ! in_root modinfo -k "$KVER" zfs >/dev/null 2>&1; then
      step timeout 1800 chroot "$ROOT" dkms install -m zfs -v "$(find "$ROOT/usr/src" -mindepth 1 -maxdepth 1 -name 'zfs-*' -printf '%f\n' | sed 's/^zfs-//' | head -n 1)" \
        -k "$KVER" >>"$WORK/apt.log" 2>&1 || { tail -n 30 "$WORK/apt.log" >&2; die "dkms install for $KVER failed"; }
    fi
    in_root modinfo -k "$KVER" zfs >/dev/null || die "no zfs module for $KVER"
    log "zfs built for $KVER ($((SECONDS - t0)) s)"

    # The guest: console on ttyS0, a fixed address on qemu's user network, root by key only,
    # nothing that wakes up on its own during a test.
    echo guest >"$ROOT/etc/hostname"
    printf '127.0.0.1 localhost\n127.0.1.1 guest\n' >"$ROOT/etc/hosts"
    echo '/dev/vda / ext4 defaults,noatime 0 1' >"$ROOT/etc/fstab"
    printf '[Match]\nName=en* eth*\n\n[Network]\nAddress=10.0.2.15/24\nGateway=10.0.2.2\n' \
      >"$ROOT/etc/systemd/network/10-qemu.network"
    in_root systemctl enable systemd-networkd.service >/dev/null 2>&1
    in_root systemctl mask systemd-networkd-wait-online.service apt-daily.timer apt-daily-upgrade.timer \
      e2scrub_all.timer fstrim.timer dpkg-db-backup.timer systemd-tmpfiles-clean.timer >/dev/null 2>&1 || true
    ssh-keygen -q -t ed25519 -N '' -C smartos-images-guest -f "$WORK/id_ed25519"
    install -d -m 700 "$ROOT/root/.ssh"
    install -m 600 "$WORK/id_ed25519.pub" "$ROOT/root/.ssh/authorized_keys"
    printf 'UseDNS no\nPermitRootLogin prohibit-password\nPasswordAuthentication no\n' \
      >"$ROOT/etc/ssh/sshd_config.d/smartos-images-guest.conf"
    # The zfs module loads in parallel with the rest of the boot: no wait for udev to settle (28 s under
    # TCG), no pool import at boot (each test session makes its own pool).
    mkdir -p "$ROOT/etc/systemd/system/zfs-load-module.service.d"
    printf '[Unit]\nRequires=\nAfter=\n' >"$ROOT/etc/systemd/system/zfs-load-module.service.d/no-settle.conf"
    in_root systemctl mask systemd-udev-settle.service zfs-import-cache.service zfs-import-scan.service \
      zfs-volume-wait.service zfs-share.service >/dev/null 2>&1
    in_root update-initramfs -c -k "$KVER" >>"$WORK/apt.log" 2>&1 || in_root update-initramfs -u -k "$KVER" >>"$WORK/apt.log" 2>&1

    rm -f "$ROOT/usr/sbin/policy-rc.d"
    in_root apt-get clean
    rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/lib/dkms/zfs/*/build "$ROOT"/usr/share/doc/* \
      "$ROOT"/usr/share/man/* "$ROOT"/usr/share/locale/*
    cp "$ROOT/boot/vmlinuz-$KVER" "$WORK/vmlinuz"
    cp "$ROOT/boot/initrd.img-$KVER" "$WORK/initrd.img"
    for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do umount "${MOUNTS[i]}"; done
    MOUNTS=()

    used_mb="$(du -sm "$ROOT" | cut -f1)"
    truncate -s "$((used_mb + used_mb / 4 + ROOT_FREE_MB))M" "$WORK/root.img"
    mkfs.ext4 -q -L guest-root -d "$ROOT" "$WORK/root.img"
    rm -rf "$ROOT"
    tar -cSf - -C "$WORK" root.img vmlinuz initrd.img id_ed25519 id_ed25519.pub |
      zstd -q -T0 -3 -o "$TARBALL.tmp"
    mv -f "$TARBALL.tmp" "$TARBALL"
    log "built and cached $TARBALL in $((SECONDS - t0)) s"
  fi

  rm -rf "$READY.tmp"
  mkdir "$READY.tmp"
  mv "$WORK"/root.img "$WORK"/vmlinuz "$WORK"/initrd.img "$WORK"/id_ed25519 "$WORK"/id_ed25519.pub "$READY.tmp/"
  chmod 600 "$READY.tmp/id_ed25519"
  mv "$READY.tmp" "$READY"
  echo "$KEY" >"$CACHE/current"
  # Older builds go: one guest is enough.
  for old in "$CACHE"/*.tar.zst "$CACHE"/*/root.img; do
    case "$old" in "$TARBALL" | "$READY/root.img") ;; *) [ -e "$old" ] && rm -rf "${old%/root.img}" ;; esac
  done
  log "guest $KEY is ready"
  echo "$READY"
}

main "$@"
exit
