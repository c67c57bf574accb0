# Sourced by the benchmarks: a real sshd on a free loopback port with throw-away keys, under "$work/ssh".
# Sets: port, user, ssh_cmd (an ssh command line that trusts the throw-away host key), sshd_pid.
# Needs: $work (see bench_workdir), and the caller's EXIT trap to kill "$sshd_pid".

# bench_workdir NAME TOOL...: fails naming the first tool missing; makes $work; at exit, stops the daemon
# ($daemon_pid) and sshd ($sshd_pid) and removes $work.
bench_workdir() {
  local name=$1 tool
  shift
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "$name: $tool is not installed (apt-get install rsync lsyncd python3 openssh-server)" >&2; exit 1; }
  done
  work=$(mktemp -d "${BENCH_DIR:-/tmp}/hasync-$name.XXXXXX")
  sshd_pid="" daemon_pid=""
  trap bench_cleanup EXIT
}
bench_cleanup() {
  [ -n "$daemon_pid" ] && kill "$daemon_pid" 2>/dev/null
  [ -n "$sshd_pid" ] && kill "$sshd_pid" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$work"
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
