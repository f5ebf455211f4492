# shellcheck shell=bash
# A fresh Debian 12 root for the package tests, and booting it with
# systemd-nspawn. Sourced by scripts/package-install-test and
# scripts/install-walkthrough; they define ROOT (the checkout), WORK (their
# scratch directory) and fail() before using these functions.

# The mirror this machine's apt uses for bookworm (deb822 .sources or .list).
debian_mirror() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'BEGIN{RS=""} /Suites:[^\n]*bookworm( |\n|$)/ && !/Enabled: *no/ {
           if (match($0, /URIs: *[^ \n]+/)) { s = substr($0, RSTART, RLENGTH); sub(/URIs: */, "", s); print s; exit } }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i+1) == "bookworm") { print $i; exit } }' "$f"
  done
}

# debian_root_cache CACHE PACKAGE...: makes CACHE (a .tar.gz of a minbase
# bookworm root with adduser, systemd and PACKAGE... installed) unless it
# exists and was made for the same package list (kept in CACHE.packages).
# SETDIAG_INSTALL_TEST_REFRESH=1 makes it anew.
debian_root_cache() {
  local cache=$1; shift
  local want="$*"
  if [ -f "$cache" ] && [ "$(cat "$cache.packages" 2>/dev/null)" = "$want" ] &&
     [ -z "${SETDIAG_INSTALL_TEST_REFRESH:-}" ]; then
    return 0
  fi
  local mirror=${SETDIAG_DEBIAN_MIRROR:-$(debian_mirror | head -1)}
  [ -n "$mirror" ] || fail "no bookworm mirror in /etc/apt/sources.list(.d); set SETDIAG_DEBIAN_MIRROR"
  echo "debootstrap bookworm from $mirror with: $want (once; cached as ${cache#"$ROOT"/})"
  local boot=$WORK/bootstrap
  debootstrap --variant=minbase --include=adduser,systemd bookworm "$boot" "$mirror" >"$WORK/debootstrap.log" 2>&1 ||
    { tail -20 "$WORK/debootstrap.log" >&2; fail "debootstrap failed"; }
  cp /etc/resolv.conf "$boot/etc/resolv.conf"
  mount -t proc proc "$boot/proc"
  # policy-rc.d: nothing the packages bring (PostgreSQL) starts in the chroot.
  printf '#!/bin/sh\nexit 101\n' > "$boot/usr/sbin/policy-rc.d"
  chmod 0755 "$boot/usr/sbin/policy-rc.d"
  chroot "$boot" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive \
    sh -c "apt-get update -qq && apt-get install -y -qq --no-install-recommends $want && apt-get clean" \
    >"$WORK/deps.log" 2>&1 || { umount -l "$boot/proc"; tail -20 "$WORK/deps.log" >&2; fail "installing $want in the root failed"; }
  umount -l "$boot/proc"
  rm -f "$boot/usr/sbin/policy-rc.d"
  mkdir -p "$(dirname "$cache")"
  tar -C "$boot" --numeric-owner -czf "$cache.tmp" . && mv "$cache.tmp" "$cache"
  echo "$want" > "$cache.packages"
  rm -rf "$boot"
}

# The packages a Debian 12 package's Depends names (alternatives: the first).
deb_depends() {
  dpkg-deb -f "$1" Depends | tr ',' '\n' | sed 's/(.*)//; s/|.*//; s/ //g' | grep -v '^$' | tr '\n' ' '
}

# nspawn_boot DIR LOG: boots the root DIR with systemd-nspawn (systemd as PID
# 1, a private network: only lo) and waits until systemd says running or
# degraded. Sets NSPAWN_PID (nspawn) and NSPAWN_INIT (the container's PID 1,
# for nsenter); ct runs a command inside. nspawn_stop powers it off.
NSPAWN_PID=
NSPAWN_INIT=
NSPAWN_TMPFS=
nspawn_boot() {
  local dir=$1 log=$2 c g state=
  command -v systemd-nspawn >/dev/null || fail "systemd-nspawn is missing (package systemd-container): run scripts/deps"
  # nspawn refuses to clean up a /run that is not tmpfs (this machine's is not).
  if [ "$(findmnt -n -o FSTYPE /run 2>/dev/null)" != tmpfs ] && ! mountpoint -q /run/systemd/nspawn; then
    mkdir -p /run/systemd/nspawn && mount -t tmpfs tmpfs /run/systemd/nspawn && NSPAWN_TMPFS=1
  fi
  systemd-nspawn -q -D "$dir" --boot --register=no --keep-unit --private-network --console=pipe \
    --machine="setdiag-test-$$" >"$log" 2>&1 &
  NSPAWN_PID=$!
  for _ in $(seq 1 60); do
    # The container's PID 1: a child of nspawn (or of its inner helper).
    for c in $(pgrep -P "$NSPAWN_PID" 2>/dev/null); do
      if [ "$(cat "/proc/$c/comm" 2>/dev/null)" = systemd ]; then NSPAWN_INIT=$c; break; fi
      for g in $(pgrep -P "$c" 2>/dev/null); do
        if [ "$(cat "/proc/$g/comm" 2>/dev/null)" = systemd ]; then NSPAWN_INIT=$g; fi
      done
    done
    [ -n "$NSPAWN_INIT" ] && break
    sleep 0.5
  done
  [ -n "$NSPAWN_INIT" ] || { cat "$log" >&2; fail "the container did not boot"; }
  for _ in $(seq 1 60); do
    state=$(ct systemctl is-system-running 2>/dev/null || true)
    case "$state" in running|degraded) break ;; esac
    sleep 0.5
  done
  echo "booted: systemd $(ct systemctl --version | head -1 | awk '{print $2}'), system $state"
}
ct() { nsenter -t "$NSPAWN_INIT" -a /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 "$@"; }
nspawn_stop() {
  if [ -n "$NSPAWN_PID" ] && kill -0 "$NSPAWN_PID" 2>/dev/null; then
    [ -n "$NSPAWN_INIT" ] && ct systemctl poweroff >/dev/null 2>&1 || true
    for _ in $(seq 1 40); do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.5; done
    kill "$NSPAWN_PID" 2>/dev/null || true
    for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$NSPAWN_PID" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$NSPAWN_PID" 2>/dev/null || true
  fi
  NSPAWN_PID=
  if [ -n "$NSPAWN_TMPFS" ]; then umount -l /run/systemd/nspawn 2>/dev/null || true; NSPAWN_TMPFS=; fi
}
