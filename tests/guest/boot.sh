#!/usr/bin/env bash
# Boots, reaches and stops the kernel-ZFS test guest that build.sh made.
#
#   boot.sh start RUNDIR   boot a guest whose files live in RUNDIR; print the SSH port when it answers
#   boot.sh stop RUNDIR    stop that guest's qemu by its PID
#   boot.sh ssh RUNDIR [command...]   run a command in (or log in to) the guest
#
# The guest runs under qemu TCG (software emulation: no KVM needed), on a qcow2 overlay over the
# cached root image, with a raw file as its second disk (/dev/vdb) for the test pool. Its only
# network is qemu's user network with restrict=on: the guest reaches nothing, and the host
# reaches its sshd through 127.0.0.1:PORT. RUNDIR then holds qemu.pid, port, console.log,
# ssh_config (`ssh -F RUNDIR/ssh_config guest`) and inventory (for ansible-playbook -i).
set -euo pipefail

CACHE="${GUEST_CACHE:-/var/cache/smartos-images-guest}"
BOOT_TIMEOUT="${GUEST_BOOT_TIMEOUT:-600}"
POOL_DISK_SIZE="${GUEST_POOL_DISK_SIZE:-4G}"
QEMU_SMP="${GUEST_SMP:-2}"
QEMU_MEM="${GUEST_MEM:-2048}"

log() { printf '%s guest-boot: %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 2 ] || usage
ACTION="$1"
RUNDIR="$2"
shift 2
if [ -d "$RUNDIR" ]; then RUNDIR="$(cd "$RUNDIR" && pwd)"; fi

# The PID in RUNDIR/qemu.pid when it is this RUNDIR's qemu (not a reused PID), else nothing.
qemu_pid() {
  local pid
  pid="$(cat "$RUNDIR/qemu.pid" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "qemu-system.*$RUNDIR/overlay.qcow2"; then
    echo "$pid"
  fi
}

ssh_guest() {
  ssh -F "$RUNDIR/ssh_config" guest "$@"
}

stop() {
  local pid i
  pid="$(qemu_pid)"
  if [ -z "$pid" ]; then
    rm -f "$RUNDIR/qemu.pid"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    [ -e "/proc/$pid" ] || break
    sleep 0.2
  done
  if [ -e "/proc/$pid" ]; then
    log "qemu $pid did not stop on SIGTERM: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do [ -e "/proc/$pid" ] || break; sleep 0.2; done
  fi
  rm -f "$RUNDIR/qemu.pid"
  log "stopped qemu $pid"
}

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
  local guest key port attempt pid t0 deadline
  command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is missing: run 'make system-deps'"
  command -v qemu-img >/dev/null || die "qemu-img is missing: run 'make system-deps'"
  guest="${GUEST_DIR:-}"
  if [ -z "$guest" ]; then
    [ -s "$CACHE/current" ] || die "no guest is built in $CACHE: run 'make guest' (tests/guest/build.sh)"
    guest="$CACHE/$(cat "$CACHE/current")"
  fi
  for f in root.img vmlinuz initrd.img id_ed25519; do
    [ -s "$guest/$f" ] || die "$guest/$f is missing: run 'make guest' (tests/guest/build.sh)"
  done
  mkdir -p "$RUNDIR"
  RUNDIR="$(cd "$RUNDIR" && pwd)"
  [ -z "$(qemu_pid)" ] || die "a guest already runs from $RUNDIR (PID $(qemu_pid)): stop it first"
  rm -f "$RUNDIR/overlay.qcow2" "$RUNDIR/pool.img" "$RUNDIR/port" "$RUNDIR/qemu.pid" "$RUNDIR/console.log"
  qemu-img create -q -f qcow2 -F raw -b "$guest/root.img" "$RUNDIR/overlay.qcow2"
  truncate -s "$POOL_DISK_SIZE" "$RUNDIR/pool.img"
  key="$RUNDIR/id_ed25519"
  install -m 600 "$guest/id_ed25519" "$key"
  t0=$SECONDS
  for attempt in 1 2 3; do
    port="$(free_port)"
    # qemu fails at once when another process took the port since: then try another.
    if qemu-system-x86_64 -name smartos-images-guest -accel tcg,thread=multi -cpu max -machine q35 \
      -smp "$QEMU_SMP" -m "$QEMU_MEM" -no-reboot -display none -monitor none \
      -serial "file:$RUNDIR/console.log" -daemonize -pidfile "$RUNDIR/qemu.pid" \
      -kernel "$guest/vmlinuz" -initrd "$guest/initrd.img" \
      -append "root=/dev/vda rw console=ttyS0 net.ifnames=0 systemd.show_status=0" \
      -drive "file=$RUNDIR/overlay.qcow2,if=virtio,format=qcow2,cache=unsafe,discard=unmap" \
      -drive "file=$RUNDIR/pool.img,if=virtio,format=raw,cache=unsafe" \
      -netdev "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:$port-:22" \
      -device virtio-net-pci,netdev=net0 -device virtio-rng-pci 2>"$RUNDIR/qemu.err"; then
      break
    fi
    [ "$attempt" -lt 3 ] || die "qemu did not start: $(cat "$RUNDIR/qemu.err")"
  done
  pid="$(qemu_pid)"
  [ -n "$pid" ] || die "qemu started but left no PID in $RUNDIR/qemu.pid"
  echo "$port" >"$RUNDIR/port"
  cat >"$RUNDIR/ssh_config" <<EOF
Host guest
  HostName 127.0.0.1
  Port $port
  User root
  IdentityFile $key
  IdentitiesOnly yes
  StrictHostKeyChecking no
  UserKnownHostsFile /dev/null
  LogLevel ERROR
  BatchMode yes
  ConnectTimeout 20
  ServerAliveInterval 15
  ServerAliveCountMax 8
EOF
  cat >"$RUNDIR/inventory" <<EOF
[guest]
guest ansible_host=127.0.0.1 ansible_port=$port ansible_user=root ansible_ssh_private_key_file=$key ansible_python_interpreter=/usr/bin/python3 ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o IdentitiesOnly=yes -o LogLevel=ERROR'
EOF
  deadline=$((SECONDS + BOOT_TIMEOUT))
  log "qemu $pid booting on 127.0.0.1:$port (console: $RUNDIR/console.log)"
  until ssh_guest true 2>/dev/null; do
    if [ -z "$(qemu_pid)" ]; then
      tail -n 30 "$RUNDIR/console.log" >&2 || true
      die "qemu exited while the guest booted"
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      tail -n 30 "$RUNDIR/console.log" >&2 || true
      stop
      die "the guest did not answer SSH within ${BOOT_TIMEOUT}s"
    fi
    sleep 2
  done
  log "guest answers SSH after $((SECONDS - t0)) s"
  echo "$port"
}

case "$ACTION" in
  start) start ;;
  stop) stop ;;
  ssh) ssh_guest "$@" ;;
  *) usage ;;
esac
