#!/bin/sh
# AMQP benchmark, Herald next to RabbitMQ: starts each broker of BROKERS on a
# fresh data dir and loopback ports, runs build/amqp_bench against it
# (publish with confirms, consume with manual acks, both at once, fixed-rate
# end-to-end latency) REPEAT times, measures the broker's CPU and RSS, stops
# it by PID and writes a table of medians into the AMQP section of
# docs/benchmarks.md.
#
# Environment:
#   BROKERS="rabbitmq herald"  brokers to run, in this order
#   COUNT=1000000     messages per publish/consume/both phase
#   RATE=10000        latency phase rate (msgs/s), SECONDS_LAT=10 its length
#   REPEAT=3          runs of each phase; the table shows medians
#   TIMEOUT=300       seconds per phase before the tool gives up
#   RABBIT_PORT=5782, RABBIT_DIST_PORT=25782   RabbitMQ's AMQP and Erlang ports
#   HERALD_PORT=5792  Herald's AMQP port (not 5682: others run RabbitMQ there)
#   DOC=1             0: do not touch docs/benchmarks.md
#
# RabbitMQ runs as /work/shared/PEERS.md shows: Debian's rabbitmq-server in
# the foreground as user rabbitmq under setpriv, so the PID held is beam.smp.
# It needs epmd: a running one is reused, else one is started here on
# 127.0.0.1 and stopped by PID at the end.
set -eu

cd "$(dirname "$0")/.."
BROKERS=${BROKERS:-rabbitmq herald}
COUNT=${COUNT:-1000000}
RATE=${RATE:-10000}
SECONDS_LAT=${SECONDS_LAT:-10}
REPEAT=${REPEAT:-3}
TIMEOUT=${TIMEOUT:-300}
RABBIT_PORT=${RABBIT_PORT:-5782}
RABBIT_DIST_PORT=${RABBIT_DIST_PORT:-25782}
HERALD_PORT=${HERALD_PORT:-5792}
DOC=${DOC:-1}

case " $BROKERS " in *" herald "*)
    if [ ! -x build/herald ]; then
        [ -f build/build.ninja ] || meson setup build --buildtype=release -Db_ndebug=true >/dev/null
        ninja -C build herald
    fi
esac
mkdir -p build
cc -O2 -Wall -Wextra -Werror -o build/amqp_bench bench/amqp_bench.c bench/bench_amqp.c bench/bench_common.c \
    $(pkg-config --cflags --libs librabbitmq 2>/dev/null || echo -lrabbitmq) -lpthread -lm

work=$(mktemp -d)
chmod 755 "$work" # the rabbitmq user works in a directory below
pid=""
epmd_pid=""

# True while process $1 exists and is not a zombie.
alive() {
    [ -n "$1" ] && [ -r "/proc/$1/stat" ] && ! grep -q '^[0-9]* (.*) Z ' "/proc/$1/stat" 2>/dev/null
}
listening() { ss -ltnH "sport = :$1" 2>/dev/null | grep -q .; }
status_kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$pid/status" 2>/dev/null || true; }

stop_pid() { # pid, seconds to wait before SIGKILL
    if alive "$1"; then
        kill -TERM "$1" 2>/dev/null || true
        i=0
        while alive "$1" && [ $i -lt $(($2 * 10)) ]; do sleep 0.1; i=$((i + 1)); done
        if alive "$1"; then kill -KILL "$1" 2>/dev/null || true; fi
    fi
    wait "$1" 2>/dev/null || true
}
stop_broker() {
    [ -z "$pid" ] || stop_pid "$pid" 60
    pid=""
}
cleanup() {
    stop_broker
    [ -z "$epmd_pid" ] || stop_pid "$epmd_pid" 5
    epmd_pid=""
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Waits up to $2 seconds for broker $pid to listen on port $1.
wait_ready() {
    i=0
    while ! listening "$1"; do
        if ! alive "$pid" || [ $i -ge $(($2 * 10)) ]; then return 1; fi
        sleep 0.1
        i=$((i + 1))
    done
}

start_rabbitmq() {
    d="$work/rabbitmq"
    mkdir -p "$d/home"
    printf 'listeners.tcp.default = 127.0.0.1:%s\n' "$RABBIT_PORT" >"$d/rabbitmq.conf"
    chown -R rabbitmq: "$d"
    if ! listening 4369; then
        epmd -address 127.0.0.1 >"$work/epmd.log" 2>&1 &
        epmd_pid=$!
        sleep 0.3
    fi
    (cd "$d" && exec setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups env -i \
        PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME="$d/home" LANG=C.UTF-8 RUNNING_UNDER_SYSTEMD=1 \
        RABBITMQ_NODENAME=amqpbench@localhost RABBITMQ_NODE_PORT="$RABBIT_PORT" \
        RABBITMQ_DIST_PORT="$RABBIT_DIST_PORT" RABBITMQ_MNESIA_BASE="$d/mnesia" \
        RABBITMQ_LOG_BASE="$d/log" RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" RABBITMQ_PID_FILE="$d/rabbitmq.pid" \
        /usr/lib/rabbitmq/bin/rabbitmq-server) >"$work/rabbitmq.out" 2>&1 &
    pid=$!
    wait_ready "$RABBIT_PORT" 60 || return 1
    sleep 1 # boot steps after the listener
}

start_herald() {
    mkdir -p "$work/herald"
    build/herald serve --http 127.0.0.1:0 --data "$work/herald" --kafka 127.0.0.1:0 --amqp "127.0.0.1:$HERALD_PORT" \
        --log-level warn >"$work/herald.out" 2>"$work/herald.err" &
    pid=$!
    wait_ready "$HERALD_PORT" 10 || return 1
    sleep 0.5
}

: >"$work/results"
: >"$work/rows"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for b in $BROKERS; do
    case $b in
    rabbitmq) port=$RABBIT_PORT ports="$RABBIT_PORT $RABBIT_DIST_PORT" knobs="RABBIT_PORT, RABBIT_DIST_PORT" ;;
    herald) port=$HERALD_PORT ports=$HERALD_PORT knobs=HERALD_PORT ;;
    *) echo "run_amqp_bench: unknown broker '$b' (rabbitmq | herald)" >&2; exit 2 ;;
    esac
    taken=""
    for p in $ports; do if listening "$p"; then taken="$taken $p"; fi; done
    if [ -n "$taken" ]; then
        echo "run_amqp_bench: port$taken taken by another process; choose others with $knobs" >&2
        printf '%s\tport%s was taken by another process\n' "$b" "$taken" >>"$work/rows"
        continue
    fi
    echo "run_amqp_bench: starting $b" >&2
    if ! "start_$b"; then
        echo "run_amqp_bench: $b did not start listening on port $port" >&2
        tail -5 "$work/$b.out" "$work/$b.err" 2>/dev/null | sed 's/^/    /' >&2 || true
        printf '%s\tdid not start (%s)\n' "$b" \
            "$(cat "$work/$b.err" "$work/$b.out" 2>/dev/null | grep . | tail -1 | cut -c1-120)" >>"$work/rows"
        stop_broker
        continue
    fi
    rss_idle=$(status_kb VmRSS)
    rc=0
    timeout $((REPEAT * (3 * TIMEOUT + SECONDS_LAT + 150))) build/amqp_bench --host 127.0.0.1 \
        --port "$port" --broker-pid "$pid" --label "$b" --count "$COUNT" --rate "$RATE" \
        --seconds "$SECONDS_LAT" --repeat "$REPEAT" --timeout "$TIMEOUT" \
        >>"$work/results" 2>"$work/$b.bench" || rc=$?
    cat "$work/$b.bench" >&2
    rss_peak=$(status_kb VmHWM)
    stop_broker
    # The tool's last word if it gave up (errors within a phase are in RESULT).
    note=$(grep -v ' (run [0-9]*): ' "$work/$b.bench" | tail -1 | cut -c1-120)
    if [ "$rc" != 0 ] && [ -z "$note" ]; then note="exit $rc"; fi
    printf '%s\tok\t%s\t%s\t%s\n' "$b" "${rss_idle:-?}" "${rss_peak:-?}" "$note" >>"$work/rows"
done
[ -z "$epmd_pid" ] || stop_pid "$epmd_pid" 5
epmd_pid=""
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# One row per broker: medians over the runs of the RESULT lines.
table=$(awk -F'\t' '
    BEGIN { split("publish consume both latency", phases, " ") }
    function med(k,    n, i, j, t, v) {
        n = cnt[k]
        if (!n) return "–"
        for (i = 1; i <= n; i++) v[i] = val[k, i]
        for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
        return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    function num(x, fmt) { return x == "–" ? x : sprintf(fmt, x) }
    function mb(kb) { return kb ~ /^[0-9]+$/ ? sprintf("%.0f", kb / 1024) : "?" }
    FNR == NR {
        if ($0 !~ /^RESULT /) next
        split($0, f, " ")
        for (i = 2; i in f; i++) { split(f[i], kv, "="); r[kv[1]] = kv[2] }
        for (x in r) if (r[x] != "-") { k = r["broker"] SUBSEP r["phase"] SUBSEP x; val[k, ++cnt[k]] = r[x] }
        if (r["errors"] > 0) { bad[r["broker"], r["phase"]]++; nbad[r["broker"]]++ }
        delete r
        next
    }
    {
        b = $1
        if ($2 != "ok") { printf "| %s | – | – | – | – | – | – | %s |\n", b, $2; next }
        p = b SUBSEP "publish" SUBSEP; c = b SUBSEP "consume" SUBSEP
        h = b SUBSEP "both" SUBSEP; l = b SUBSEP "latency" SUBSEP
        note = $5
        if (nbad[b]) {
            note = note (note == "" ? "" : "; ") "runs with errors (timed out or lost):"
            for (i = 1; i <= 4; i++) {
                ph = phases[i]
                if (bad[b, ph]) note = note sprintf(" %s %d/%d", ph, bad[b, ph], cnt[b SUBSEP ph SUBSEP "rate"])
            }
        }
        printf "| %s | %s | %s | %s | %s / %s / %s / %s | %s / %s / %s | %s / %s | %s |\n", b,
            num(med(p "rate"), "%.0f"), num(med(c "rate"), "%.0f"), num(med(h "rate"), "%.0f"),
            num(med(p "cpu_per_m"), "%.1f"), num(med(c "cpu_per_m"), "%.1f"),
            num(med(h "cpu_per_m"), "%.1f"), num(med(l "cpu_per_m"), "%.1f"),
            num(med(l "p50_ms"), "%.2f"), num(med(l "p99_ms"), "%.1f"), num(med(l "p999_ms"), "%.1f"),
            mb($3), mb($4), note
    }' "$work/results" "$work/rows")

rabbit_ver=$(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null || echo '?')
erlang_ver=$(dpkg-query -W -f '${Version}' erlang-base 2>/dev/null || echo '?')
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git status --porcelain --untracked-files=no -- src 2>/dev/null)" ]; then rev="$rev + uncommitted changes in src/"; fi
machine="$(nproc) vCPU, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), Linux $(uname -r)"
section=$(
    echo "### Run of $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- machine: $machine"
    echo "- command: \`make bench-amqp\` (\`bench/run_amqp_bench.sh\`: BROKERS=\"$BROKERS\" COUNT=$COUNT RATE=$RATE SECONDS_LAT=$SECONDS_LAT REPEAT=$REPEAT TIMEOUT=$TIMEOUT)"
    echo "- tool: \`build/amqp_bench --count $COUNT --rate $RATE --seconds $SECONDS_LAT --repeat $REPEAT\` on rabbitmq-c $(pkg-config --modversion librabbitmq 2>/dev/null || echo '?'); 100-byte persistent messages, a fresh durable queue per phase"
    echo "- load average (1/5/15 min): $load_before before, $load_after after; other work on the 2 vCPUs lowers the figures"
    echo "- brokers: RabbitMQ $rabbit_ver (Erlang $erlang_ver, classic queue, default config); herald built from $rev"
    echo
    echo "| broker | publish msgs/s | consume msgs/s | both msgs/s | broker CPU-s per 1M: publish / consume / both / latency | p50 / p99 / p99.9 ms at $RATE msgs/s | RSS MB idle / peak | notes |"
    echo "|---|---:|---:|---:|---:|---:|---:|---|"
    echo "$table"
    echo
    echo "Every run (\`RESULT\` lines of \`build/amqp_bench\`):"
    echo
    echo '```'
    sed 's/^RESULT //' "$work/results"
    echo '```'
)
echo "$section"

if [ "$DOC" = 1 ]; then
    doc=docs/benchmarks.md
    begin='<!-- amqp-bench:begin -->'
    end='<!-- amqp-bench:end -->'
    [ -f "$doc" ] || printf '# Benchmarks\n' >"$doc"
    if ! grep -qF "$begin" "$doc"; then printf '\n%s\n%s\n' "$begin" "$end" >>"$doc"; fi
    printf '%s\n' "$section" >"$doc.amqp.tmp"
    awk -v b="$begin" -v e="$end" -v f="$doc.amqp.tmp" '
        $0 == b { print; while ((getline l < f) > 0) print l; skip = 1; next }
        $0 == e { skip = 0 }
        !skip { print }' "$doc" >"$doc.tmp2"
    mv "$doc.tmp2" "$doc"
    rm -f "$doc.amqp.tmp"
    echo "run_amqp_bench: wrote $doc" >&2
fi
# Non-zero if a broker did not start or any phase had errors.
awk -F'\t' '$2 != "ok" { bad = 1 } END { exit bad }' "$work/rows" || exit 1
grep -q ' errors=[1-9]' "$work/results" && exit 1
exit 0
