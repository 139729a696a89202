# shellcheck shell=bash disable=SC2034 # the settings are used by the scripts that source this
# Shared settings and helpers for deploy/install, deploy/start, deploy/stop and
# deploy/test. Sourced, never run. Every path and port can be overridden by env.

SVC_DIR=${POSTBOX_SERVICES_DIR:-/var/tmp/postbox-services}
export POSTBOX_SERVICES_DIR=$SVC_DIR

PG_PORT=${POSTBOX_PG_PORT:-55432}
MINIO_PORT=${POSTBOX_MINIO_PORT:-59000}
MINIO_CONSOLE_PORT=${POSTBOX_MINIO_CONSOLE_PORT:-59001}
CH_PORT=${POSTBOX_CLICKHOUSE_PORT:-59100}
CH_HTTP_PORT=${POSTBOX_CLICKHOUSE_HTTP_PORT:-58123}
SMTP_PORT=${POSTBOX_MAILDEV_SMTP_PORT:-51025}
MAILDEV_WEB_PORT=${POSTBOX_MAILDEV_WEB_PORT:-51080}
for _p in "$PG_PORT" "$MINIO_PORT" "$MINIO_CONSOLE_PORT" "$CH_PORT" "$CH_HTTP_PORT" "$SMTP_PORT" "$MAILDEV_WEB_PORT"; do
	# Out of range would silently wrap to another port (ClickHouse and bash both do).
	if [[ ! $_p =~ ^[1-9][0-9]{0,4}$ ]] || ((_p > 65535)); then
		echo "ERROR: bad port '$_p' in POSTBOX_*_PORT" >&2
		exit 1
	fi
done
unset _p
START_TIMEOUT=${POSTBOX_START_TIMEOUT:-90}
STOP_TIMEOUT=${POSTBOX_STOP_TIMEOUT:-30}
S3_BUCKET=postbox

PG_BIN=/usr/lib/postgresql/15/bin
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
MAILDEV_VERSION=3.0.0
NPM_PREFIX=$SVC_DIR/npm
MAILDEV_BIN=$NPM_PREFIX/node_modules/.bin/maildev
ALL_SERVICES=(postgres minio clickhouse maildev)

# CI runs with the machine's environment; Go may be installed but not on PATH.
if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
	PATH=$PATH:/usr/local/go/bin
fi

say() { printf '[%s] %s\n' "$1" "${*:2}" >&2; }
die() {
	printf 'ERROR: %s\n' "$*" >&2
	exit 1
}

minio_bin() {
	local gobin
	gobin=$(go env GOBIN)
	printf '%s/minio\n' "${gobin:-$(go env GOPATH)/bin}"
}

valid_service() {
	local s
	for s in "${ALL_SERVICES[@]}"; do [[ $1 == "$s" ]] && return 0; done
	return 1
}

# Services dir: world-traversable so the postgres user can reach its own
# subfolder; everything secret inside is mode 600/700.
ensure_svc_dir() {
	mkdir -p "$SVC_DIR"
	chmod 0755 "$SVC_DIR"
}

# take_lock NAME SECONDS: serialises concurrent runs (two engineers, or
# deploy/test next to a manual deploy/start) on one services dir. Held on fd 9
# until the script exits; long-lived children must get 9>&-.
take_lock() {
	local f=$SVC_DIR/.$1.lock
	ensure_svc_dir
	exec 9>"$f"
	flock -n 9 && return 0
	say lock "another deploy script holds $f; waiting up to $2 s"
	flock -w "$2" 9 || die "could not lock $f within $2 s"
}

# proc_running PID PATTERN: true when PID is alive and its command line holds
# PATTERN. The pattern guards against a recycled pid; a zombie has an empty
# command line and counts as gone. No pipe into grep -q: with pipefail the
# writer's SIGPIPE would turn a match into a failure.
proc_running() {
	local cmd
	[[ $1 =~ ^[0-9]+$ ]] || return 1
	cmd=$(tr '\0' ' ' 2>/dev/null <"/proc/$1/cmdline") || return 1
	[[ -n $cmd && $cmd == *"$2"* ]]
}

# pidfile_pid FILE: prints the pid in FILE's first line (postmaster.pid too).
pidfile_pid() {
	local pid=
	[[ -s $1 ]] && read -r pid <"$1"
	printf '%s\n' "$pid"
}

port_open() { (: <>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

http_ok() { curl -fsS -m 3 -o /dev/null "$1"; }

# fail_log NAME REASON LOGFILE...: error naming the service plus its log tails.
fail_log() {
	local name=$1 reason=$2 f
	shift 2
	printf 'ERROR: %s %s\n' "$name" "$reason" >&2
	for f in "$@"; do
		[[ -s $f ]] || continue
		printf '  --- last lines of %s ---\n' "$f" >&2
		tail -n 25 "$f" | sed 's/^/  /' >&2
	done
}

# wait_ready NAME PID PATTERN LOGS CHECK...: polls CHECK every 0.2 s until it
# succeeds; fails at once if the process exits, or after START_TIMEOUT s.
# LOGS is a colon-separated list shown on failure.
wait_ready() {
	local name=$1 pid=$2 pattern=$3 logs=$4 deadline=$((SECONDS + START_TIMEOUT))
	shift 4
	local -a logv
	IFS=: read -r -a logv <<<"$logs"
	until "$@" >/dev/null 2>&1; do
		if [[ -n $pid ]] && ! proc_running "$pid" "$pattern"; then
			fail_log "$name" "exited during start-up" "${logv[@]}"
			return 1
		fi
		if ((SECONDS >= deadline)); then
			fail_log "$name" "not ready after ${START_TIMEOUT}s" "${logv[@]}"
			return 1
		fi
		sleep 0.2
	done
}

# launch PIDFILE LOG CMD...: starts CMD in its own session (a Ctrl-C or job
# kill aimed at the caller must not reach it), with no inherited terminal or
# pipe fds (a $(...) around deploy/start would hang otherwise), and records
# its pid: the sh writes its own pid, then execs CMD under that pid.
launch() {
	local pidf=$1 logf=$2 i
	shift 2
	rm -f "$pidf"
	printf '=== %s start: %s\n' "$(date '+%F %T')" "$*" >>"$logf"
	# 9>&-: the server must not inherit the services lock (take_lock), or
	# the lock stays held for the server's lifetime and the next deploy/stop hangs.
	# shellcheck disable=SC2016 # $$ and $0 belong to the inner sh
	setsid sh -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$pidf" "$@" \
		</dev/null >>"$logf" 2>&1 9>&- &
	for ((i = 0; i < 50; i++)); do
		[[ -s $pidf ]] && return 0
		sleep 0.1
	done
	return 1
}

# stop_pid NAME PIDFILE PATTERN: TERM, wait, KILL as a last resort. Only a pid
# from our pid file whose command line matches PATTERN is ever signalled.
stop_pid() {
	local name=$1 pidf=$2 pattern=$3 pid deadline
	pid=$(pidfile_pid "$pidf")
	if ! proc_running "$pid" "$pattern"; then
		say "$name" "not running"
		rm -f "$pidf"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	deadline=$((SECONDS + STOP_TIMEOUT))
	while proc_running "$pid" "$pattern"; do
		if ((SECONDS >= deadline)); then
			say "$name" "still running after ${STOP_TIMEOUT}s, sending KILL to $pid"
			kill -KILL "$pid" 2>/dev/null || true
			deadline=$((SECONDS + 10))
			while proc_running "$pid" "$pattern"; do
				((SECONDS < deadline)) || die "$name (pid $pid) does not exit"
				sleep 0.2
			done
			break
		fi
		sleep 0.1
	done
	rm -f "$pidf"
	say "$name" "stopped (pid $pid)"
}

# as_pg CMD...: initdb and pg_ctl refuse to run as root. cd / because the
# postgres user may not be allowed into the caller's working directory;
# 9>&- so the postmaster started by pg_ctl does not keep the services lock.
as_pg() {
	if ((EUID == 0)); then
		(cd / && runuser -u postgres -- "$@" 9>&-)
	else
		(cd / && "$@" 9>&-)
	fi
}
