# Sourced by the benchmarks: a real sshd on a free loopback port with throw-away keys, under "$work/ssh".
# Sets: port, user, ssh_cmd (an ssh command line that trusts the throw-away host key), sshd_pid.
# Needs: $work (see bench_workdir), and the caller's EXIT trap to kill "$sshd_pid".

# bench_workdir NAME TOOL...: fails naming the first tool missing, or an inotify queue too short to measure with; makes
# $work; at exit, stops the daemon ($daemon_pid) and sshd ($sshd_pid) and removes $work.
bench_workdir() {
  local name=$1 tool queued
  shift
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "$name: $tool is not installed (apt-get install rsync lsyncd python3 openssh-server)" >&2; exit 1; }
  done
  # The queue length is global: one left short (by a test killed while it had lowered it) overflows every watcher, and a
  # burst would time full scans, hasync's and lsyncd's alike.
  queued=$(cat /proc/sys/fs/inotify/max_queued_events)
  (( queued >= 16384 )) || { echo "$name: fs.inotify.max_queued_events is $queued, below the kernel's default 16384 (a test run killed while it had lowered it leaves it so); set it back first: sysctl fs.inotify.max_queued_events=16384" >&2; exit 1; }
  work=$(mktemp -d "${BENCH_DIR:-/tmp}/hasync-$name.XXXXXX")
  sshd_pid="" daemon_pid=""
  trap bench_cleanup EXIT
}
bench_cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null
  [ -n "$sshd_pid" ] && kill "$sshd_pid" 2>/dev/null
  wait 2>/dev/null
  if [ -n "${passive_image:-}" ]; then
    umount "$passive" 2>/dev/null || umount -l "$passive"
    rm -f "$passive_image"
  fi
  if [ -n "${fs_image:-}" ]; then
    umount "$work" 2>/dev/null || umount -l "$work"   # lazily if an agent sshd started is still going
    rm -f "$fs_image"
  fi
  rm -rf "$work"
}

# bench_fresh_fs GIB INODES: mounts a journaled ext4 of its own on $work (a sparse image beside it), when running as root
# (BENCH_FRESH_FS=0: not). Both tools then write to the same fresh file system. Why: on an ext4 without a journal (the
# root of the CI machine), creating inodes is slow for minutes after many were deleted (the allocator steps over each
# recently deleted inode, 80 % of a cold copy's time in perf), and the benchmarks delete trees between runs: the rows
# that create many files would measure when the last tree was deleted, in whichever tool ran next. Call before start_sshd.
bench_fresh_fs() {
  local gib=$1 inodes=$2
  fs_image=""
  [ "${BENCH_FRESH_FS:-1}" = 1 ] || return 0
  if [ "$(id -u)" -ne 0 ] || ! command -v mkfs.ext4 >/dev/null; then
    echo "note: not root (or no mkfs.ext4): $work stays on $(df --output=source "$work" | tail -n 1); rows that create many files also measure its state" >&2
    return 0
  fi
  fs_image="$work.img"
  truncate -s "${gib}G" "$fs_image"
  mkfs.ext4 -q -F -N "$inodes" -E lazy_itable_init=1,lazy_journal_init=1 "$fs_image" || { echo "mkfs.ext4 of $fs_image failed" >&2; exit 1; }
  bench_mount_image "$fs_image" "$work" || { echo "cannot mount $fs_image on $work (BENCH_FRESH_FS=0 runs without)" >&2; exit 1; }
}

# bench_mount_image IMAGE DIR: mounts the ext4 in IMAGE on DIR through a loop device that does direct I/O on the image.
# noinit_itable: no background zeroing of the inode tables while the tools are timed. Direct I/O: a buffered loop device
# copies every page written into a second page cache (the image's) and writes none of it to the disk until a flush,
# which then carries all of it; a disk writes back as the kernel submits, so a writer that starts its writeback early
# (sync_file_range) waits at its fsync only for the tail, as it would on the real disk (measured here, 100 MB written
# at a network's pace, 8 MiB ranges submitted: fsync 52-56 ms on the root disk and on a direct loop, 74-81 ms buffered).
bench_mount_image() {
  local image=$1 dir=$2 device
  mount -o loop,noinit_itable "$image" "$dir" || return 1
  device=$(findmnt -n -o SOURCE --target "$dir")
  losetup --direct-io=on "$device" || echo "note: $device cannot do direct I/O; its flushes carry every page written since the last" >&2
}

# bench_passive_fs GIB INODES: $passive, where the replicas go: an ext4 of its own mounted on $work/passive (under the
# same conditions as bench_fresh_fs; else $passive is $work). A real pair's passive is another machine: a flush there
# (the agent's syncfs) must not also write out the active's files, as it would on one shared file system.
bench_passive_fs() {
  local gib=$1 inodes=$2
  passive="$work"; passive_image=""
  [ -n "${fs_image:-}" ] || return 0
  passive="$work/passive"; passive_image="$work.passive.img"
  truncate -s "${gib}G" "$passive_image"
  mkfs.ext4 -q -F -N "$inodes" -E lazy_itable_init=1,lazy_journal_init=1 "$passive_image" || { echo "mkfs.ext4 of $passive_image failed" >&2; exit 1; }
  mkdir -p "$passive"
  bench_mount_image "$passive_image" "$passive" || { echo "cannot mount $passive_image on $passive" >&2; exit 1; }
}

start_sshd() {
  mkdir -p /run/sshd "$work/ssh"
  ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/host_key"
  ssh-keygen -q -t ed25519 -N '' -f "$work/ssh/user_key"
  cp "$work/ssh/user_key.pub" "$work/ssh/authorized_keys"
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)))
  cat >"$work/ssh/sshd_config" <<CFG
Port $port
ListenAddress 127.0.0.1
HostKey $work/ssh/host_key
PidFile $work/ssh/sshd.pid
AuthorizedKeysFile $work/ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin yes
StrictModes no
UsePAM no
LogLevel ERROR
SetEnv DOTNET_ROOT=$(dirname "$(readlink -f "$(command -v dotnet)")")
CFG
  /usr/sbin/sshd -D -e -f "$work/ssh/sshd_config" 2>"$work/ssh/sshd.log" &
  sshd_pid=$!
  user=$(id -un)
  ssh_cmd="ssh -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -i $work/ssh/user_key -p $port"
  for _ in $(seq 1 100); do $ssh_cmd "$user@127.0.0.1" true 2>/dev/null && break; sleep 0.1; done
  $ssh_cmd "$user@127.0.0.1" true || { echo "sshd did not come up: $(cat "$work/ssh/sshd.log")" >&2; exit 1; }
}

# hasync's target settings for the same sshd (YAML lines, indented for a list item): HASYNC ROOT [NAME].
hasync_target_yaml() {
  cat <<CFG
  - name: ${3:-bench}
    host: 127.0.0.1
    port: $port
    user: $user
    identity_file: $work/ssh/user_key
    ssh_options: ["-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR"]
    command: [$1, serve, --root, $2, --state, $2.state]
CFG
}
