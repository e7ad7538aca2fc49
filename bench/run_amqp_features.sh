#!/bin/sh
# AMQP queue-feature benchmark, Herald next to RabbitMQ: starts each broker of
# BROKERS on a fresh data dir and loopback ports, runs build/amqp_features
# (bench/amqp_features.c) with every scenario the broker has, REPEAT times
# interleaved, measures the broker's CPU and RSS, stops it by PID, then runs
# the deep-backlog scenario on a fresh Herald, and writes a table of medians
# into the amqp-features section of docs/benchmarks.md.
#
# Environment:
#   BROKERS="rabbitmq herald"  brokers to run, in this order
#   COUNT=1000000        messages per Herald scenario run
#   RABBIT_COUNT=200000  messages per RabbitMQ scenario run (it does ~20k/s)
#   HERALD_SCENARIOS="plain,dlx-retry,dlx-requeue,dlx-idle,priority,ttl,ttl-expire,delayed"
#   RABBIT_SCENARIOS="plain,dlx-requeue,priority,ttl,ttl-expire" (RabbitMQ 3.10
#                        has no retry backoff; the delayed-message plugin is
#                        not in Debian's package)
#   BACKLOG=10000000     deep-backlog messages (Herald, fresh broker: a durable
#                        queue of persistent messages, then a non-durable one of
#                        transient messages); 0: skip
#   NACK_PCT=10 REJECT_PCT=1 BACKOFF=100ms EXPIRE_TTL=1000 DELAY_MAX=2000
#   REPEAT=3             runs of each RabbitMQ scenario; the table shows medians
#   HERALD_REPEAT=5      the same for Herald (a run takes seconds; its figures
#                        move by +-15 % from run to run on this VM, and three
#                        runs left a ratio to plain off by up to 10 points)
#   FRESH="herald"       brokers started afresh (new data dir) for every
#                        scenario run, after a plain warm-up of COUNT / 5: each
#                        scenario starts from the same state, none pays for
#                        the memory or files the one before left. The others
#                        (RabbitMQ: ~10 s to boot) serve all the scenarios of
#                        a repeat, with SETTLE seconds between runs.
#   AGAIN=1              with FRESH brokers, each scenario runs a second time
#                        right after its first run, on the same broker
#                        (bench/amqp_features.c --again): a second table shows
#                        what a scenario costs once the broker has grown to its
#                        working set (a first run of delayed messages grows it
#                        by ~140 MB: on this VM, memory new to the guest costs
#                        the host's faults, 1.3-2.8 ms per MB); 0: first runs only
#   SETTLE=3             seconds of pause after each run on a shared broker
#                        (Herald gives a drained run's memory back within 2 s;
#                        without the pause the next scenario paid for it)
#   TIMEOUT=300          seconds per scenario run before the tool gives up
#   RABBIT_TIMEOUT=$TIMEOUT  the same for RabbitMQ
#   RABBIT_PORT=5783, RABBIT_DIST_PORT=25783, HERALD_PORT=5793
#   DOC=1                0: do not touch docs/benchmarks.md (DOC_FILE: write another file)
#
# RabbitMQ runs as /work/shared/PEERS.md shows (as bench/run_amqp_bench.sh
# does): Debian's rabbitmq-server in the foreground as user rabbitmq under
# setpriv, so the PID held is beam.smp; a running epmd is reused, else one is
# started on 127.0.0.1 and stopped by PID at the end.
set -eu

cd "$(dirname "$0")/.."
BROKERS=${BROKERS:-rabbitmq herald}
COUNT=${COUNT:-1000000}
RABBIT_COUNT=${RABBIT_COUNT:-200000}
HERALD_SCENARIOS=${HERALD_SCENARIOS:-plain,dlx-retry,dlx-requeue,dlx-idle,priority,ttl,ttl-expire,delayed}
RABBIT_SCENARIOS=${RABBIT_SCENARIOS:-plain,dlx-requeue,priority,ttl,ttl-expire}
BACKLOG=${BACKLOG:-10000000}
NACK_PCT=${NACK_PCT:-10}
REJECT_PCT=${REJECT_PCT:-1}
BACKOFF=${BACKOFF:-100ms}
EXPIRE_TTL=${EXPIRE_TTL:-1000}
DELAY_MAX=${DELAY_MAX:-2000}
REPEAT=${REPEAT:-3}
HERALD_REPEAT=${HERALD_REPEAT:-5}
SETTLE=${SETTLE:-3}
FRESH=${FRESH:-herald}
AGAIN=${AGAIN:-1}
TIMEOUT=${TIMEOUT:-300}
RABBIT_TIMEOUT=${RABBIT_TIMEOUT:-$TIMEOUT}
RABBIT_PORT=${RABBIT_PORT:-5783}
RABBIT_DIST_PORT=${RABBIT_DIST_PORT:-25783}
HERALD_PORT=${HERALD_PORT:-5793}
DOC=${DOC:-1}

case " $BROKERS " in *" herald "*)
    [ -f build/build.ninja ] || meson setup build --buildtype=release -Db_ndebug=true >/dev/null
    ninja -C build herald >/dev/null
esac
# What the binary was built from, read now: files edited while the run
# goes on are not in it.
rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
dirty=$(git status --porcelain --untracked-files=no -- src 2>/dev/null | awk '{ printf "%s%s", (NR > 1 ? ", " : ""), $2 }')
if [ -n "$dirty" ]; then rev="$rev + uncommitted changes in $dirty"; fi
mkdir -p build
cc -O2 -Wall -Wextra -Werror -o build/amqp_features bench/amqp_features.c bench/bench_amqp.c bench/bench_common.c \
    $(pkg-config --cflags --libs librabbitmq 2>/dev/null || echo -lrabbitmq) -lpthread -lm

work=$(mktemp -d)
chmod 755 "$work" # the rabbitmq user works in a directory below
pid=""
epmd_pid=""

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

wait_ready() { # port, seconds
    i=0
    while ! listening "$1"; do
        if ! alive "$pid" || [ $i -ge $(($2 * 10)) ]; then return 1; fi
        sleep 0.1
        i=$((i + 1))
    done
}

start_rabbitmq() {
    d="$work/rabbitmq"
    rm -rf "$d"
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
        RABBITMQ_NODENAME=amqpfeatures@localhost RABBITMQ_NODE_PORT="$RABBIT_PORT" \
        RABBITMQ_DIST_PORT="$RABBIT_DIST_PORT" RABBITMQ_MNESIA_BASE="$d/mnesia" \
        RABBITMQ_LOG_BASE="$d/log" RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins" RABBITMQ_PID_FILE="$d/rabbitmq.pid" \
        /usr/lib/rabbitmq/bin/rabbitmq-server) >"$work/rabbitmq.out" 2>&1 &
    pid=$!
    wait_ready "$RABBIT_PORT" 60 || return 1
    sleep 1 # boot steps after the listener
}

start_herald() {
    rm -rf "$work/herald"
    mkdir -p "$work/herald"
    build/herald serve --http 127.0.0.1:0 --data "$work/herald" --kafka 127.0.0.1:0 --amqp "127.0.0.1:$HERALD_PORT" \
        --log-level warn >"$work/herald.out" 2>"$work/herald.err" &
    pid=$!
    wait_ready "$HERALD_PORT" 10 || return 1
    sleep 0.5
}

# Keeps a crashed broker's log next to the results (build/, not committed).
check_crash() { # broker, tool exit status, what ran
    if [ -n "$pid" ] && ! alive "$pid"; then
        n=$(($(cat "$work/crashes" 2>/dev/null || echo 0) + 1))
        echo "$n" >"$work/crashes"
        log="build/amqp_features-$1-crash-$n.log"
        echo "run_amqp_features: $1 DIED during $3 (tool exit $2); log in $log" >&2
        {
            cat "$work/$1.out" "$work/$1.err" 2>/dev/null
            echo "--- kernel:"
            dmesg 2>/dev/null | grep -F "$1[$pid]" || true
        } >"$log"
        printf '%s\tcrashed during %s (log: %s)\n' "$1" "$3" "$log" >>"$work/notes"
        wait "$pid" 2>/dev/null || true
        pid=""
    fi
}

# Runs the tool against the broker started last; RESULT lines go to results.
# The warm-up (a plain run of a fifth of the count, not reported) keeps a
# fresh broker's first-touch costs out of the first scenario.
run_tool() { # broker, count, scenarios, run number, warm-up messages, settle seconds, again (0/1)
    rc=0
    timeout $((9 * (tmo + 70) + 60)) build/amqp_features --host 127.0.0.1 --port "$port" \
        --broker-pid "$pid" --label "$1" --count "$2" --scenario "$3" --first-run "$4" \
        --timeout "$tmo" --nack-pct "$NACK_PCT" --reject-pct "$REJECT_PCT" --backoff "$BACKOFF" \
        --expire-ttl "$EXPIRE_TTL" --delay-max "$DELAY_MAX" --settle "${6:-$SETTLE}" --warmup "${5:-0}" --again "${7:-0}" >>"$work/results" 2>"$work/tool.err" || rc=$?
    cat "$work/tool.err" >&2
    if [ "$rc" != 0 ]; then
        printf '%s\trun %s of %s: exit %s: %s\n' "$1" "$4" "$3" "$rc" "$(grep -v ' (run [0-9]*): ' "$work/tool.err" | tail -1 | cut -c1-160)" >>"$work/notes"
    fi
    check_crash "$1" "$rc" "run $4 of $3"
}

: >"$work/results"
: >"$work/notes"
: >"$work/idle"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for b in $BROKERS; do
    case $b in
    rabbitmq) port=$RABBIT_PORT ports="$RABBIT_PORT $RABBIT_DIST_PORT" count=$RABBIT_COUNT scen=$RABBIT_SCENARIOS tmo=$RABBIT_TIMEOUT repeat=$REPEAT ;;
    herald) port=$HERALD_PORT ports=$HERALD_PORT count=$COUNT scen=$HERALD_SCENARIOS tmo=$TIMEOUT repeat=$HERALD_REPEAT ;;
    *) echo "run_amqp_features: unknown broker '$b' (rabbitmq | herald)" >&2; exit 2 ;;
    esac
    taken=""
    for p in $ports; do if listening "$p"; then taken="$taken $p"; fi; done
    if [ -n "$taken" ]; then
        echo "run_amqp_features: port$taken taken by another process" >&2
        printf '%s\tport%s taken by another process\n' "$b" "$taken" >>"$work/notes"
        continue
    fi
    echo "run_amqp_features: starting $b ($(date -u +%H:%M:%S))" >&2
    if ! "start_$b"; then
        echo "run_amqp_features: $b did not start" >&2
        printf '%s\tdid not start\n' "$b" >>"$work/notes"
        stop_broker
        continue
    fi
    printf '%s\t%s\n' "$b" "$(status_kb VmRSS)" >>"$work/idle"
    case " $FRESH " in *" $b "*)
        # A fresh broker for every scenario run (scenarios interleaved).
        stop_broker
        r=1
        while [ $r -le "$repeat" ]; do
            for s in $(echo "$scen" | tr , ' '); do
                if ! "start_$b"; then
                    printf '%s\tdid not start for run %s of %s\n' "$b" "$r" "$s" >>"$work/notes"
                    continue
                fi
                run_tool "$b" "$count" "$s" "$r" $((count / 5)) 0 "$AGAIN"
                stop_broker
            done
            r=$((r + 1))
        done
        continue
    esac
    # One tool run per repeat (scenarios interleaved); a broker that died is
    # restarted on a fresh data dir for the next repeat.
    r=1
    while [ $r -le "$repeat" ]; do
        if [ -z "$pid" ] && ! "start_$b"; then
            printf '%s\tdid not restart for run %s\n' "$b" "$r" >>"$work/notes"
            break
        fi
        run_tool "$b" "$count" "$scen" "$r" $((r == 1 ? count / 5 : 0))
        r=$((r + 1))
    done
    stop_broker
done

# Deep backlog: a fresh Herald, BACKLOG ready messages, then drained; in a
# durable queue, then in a non-durable one.
if [ "$BACKLOG" -gt 0 ] && [ "${BROKERS#*herald}" != "$BROKERS" ]; then
    port=$HERALD_PORT tmo=$((TIMEOUT > 300 ? TIMEOUT : 300))
    echo "run_amqp_features: deep backlog, $BACKLOG messages ($(date -u +%H:%M:%S))" >&2
    if start_herald; then
        run_tool herald "$BACKLOG" backlog,backlog-transient 1 0
        sed -n 's/^amqp_features: \(backlog[a-z-]*\): broker RSS \([0-9]*\) kB.*/\1 \2/p' "$work/tool.err" >"$work/backlog_full" || true
        stop_broker
    else
        printf 'herald\tbacklog: did not start\n' >>"$work/notes"
    fi
fi
[ -z "$epmd_pid" ] || stop_pid "$epmd_pid" 5
epmd_pid=""
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# What both tables share: med(k), the median of the values kept under k
# (val[k, 1..cnt[k]]); f(x, fmt), x formatted or a dash; r, the fields of
# a RESULT line.
awk_common='
    function med(k,    n, i, j, t, v) {
        n = cnt[k]
        if (!n) return ""
        for (i = 1; i <= n; i++) v[i] = val[k, i]
        for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j - 1] > v[j]; j--) { t = v[j]; v[j] = v[j - 1]; v[j - 1] = t }
        return n % 2 ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
    }
    function f(x, fmt) { return x == "" ? "–" : sprintf(fmt, x) }
    /^RESULT / {
        delete r
        for (i = 2; i <= NF; i++) { split($i, kv, "="); r[kv[1]] = kv[2] }
    }'

# Medians of the RESULT lines, one row per scenario.
table=$(awk "$awk_common"'
    /^RESULT / {
        if (r["phase"] != "both") next
        s = r["scenario"]; b = r["broker"]
        seen[s] = 1
        for (x in r) if (r[x] != "-") { k = b SUBSEP s SUBSEP x; val[k, ++cnt[k]] = r[x] }
        runs[b, s]++
        if (r["errors"] > 0) bad[b, s]++
    }
    END {
        hp = med("herald" SUBSEP "plain" SUBSEP "rate"); rp = med("rabbitmq" SUBSEP "plain" SUBSEP "rate")
        hpp = med("herald" SUBSEP "plain" SUBSEP "pub_rate")
        ns = split("plain dlx-retry dlx-requeue dlx-idle priority ttl ttl-expire delayed", order, " ")
        for (i = 1; i <= ns; i++) {
            s = order[i]; h = "herald" SUBSEP s SUBSEP; qs = s
            if (!(s in seen)) continue
            # RabbitMQ has no retry backoff: dlx-retry is set against its dlx-requeue.
            if (s == "dlx-retry" && !cnt["rabbitmq" SUBSEP s SUBSEP "rate"]) qs = "dlx-requeue"
            q = "rabbitmq" SUBSEP qs SUBSEP
            hr = med(h "rate"); rr = med(q "rate"); hpr = med(h "pub_rate")
            hrel = (hr != "" && hp != "") ? sprintf("%.0f %%", 100 * hr / hp) : "–"
            hprel = (hpr != "" && hpp != "") ? sprintf(" (%.0f %%)", 100 * hpr / hpp) : ""
            rrel = (rr != "" && rp != "") ? sprintf("%.0f %%", 100 * rr / rp) : "–"
            x = (hr != "" && rr != "") ? sprintf("%.1f×", hr / rr) : "–"
            rcell = f(rr, "%.0f")
            if (qs != s && rr != "") rcell = rcell " (its dlx-requeue: no backoff)"
            if (s == "delayed" && rr == "") rcell = "– (no plugin in Debian)"
            note = ""
            if (med(h "lat_p50_ms") != "") note = sprintf("herald %s p50 / p99 %s / %s ms", s == "delayed" ? "lateness" : "nack→redelivery", med(h "lat_p50_ms"), med(h "lat_p99_ms"))
            if (med(q "lat_p50_ms") != "") note = note (note == "" ? "" : "; ") sprintf("rabbitmq nack→redelivery p50 / p99 %s / %s ms", med(q "lat_p50_ms"), med(q "lat_p99_ms"))
            if (rr != "" && s != "plain") note = note (note == "" ? "" : "; ") sprintf("rabbitmq publish %s msgs/s", f(med(q "pub_rate"), "%.0f"))
            if (bad["herald", s]) note = note sprintf("; herald runs with errors %d/%d", bad["herald", s], runs["herald", s])
            if (bad["rabbitmq", qs]) note = note sprintf("; rabbitmq runs with errors %d/%d", bad["rabbitmq", qs], runs["rabbitmq", qs])
            printf "| %s | %s | %s | %s%s | %s | %s | %s | %s | %s | %s | %s | %s |\n", s,
                f(hr, "%.0f"), hrel, f(hpr, "%.0f"), hprel, f(med(h "cpu_per_m"), "%.1f"),
                f(med(h "rss_start_kb") == "" ? "" : med(h "rss_start_kb") / 1024, "%.0f") " → " f(med(h "rss_peak_kb") == "" ? "" : med(h "rss_peak_kb") / 1024, "%.0f"),
                rcell, rrel, f(med(q "cpu_per_m"), "%.1f"), f(med(q "rss_start_kb") == "" ? "" : med(q "rss_start_kb") / 1024, "%.0f") " → " f(med(q "rss_peak_kb") == "" ? "" : med(q "rss_peak_kb") / 1024, "%.0f"),
                x, note
        }
    }' "$work/results")

# The same for the second runs on the same broker (AGAIN=1).
again=$(awk "$awk_common"'
    /^RESULT / {
        if (r["phase"] != "again" || r["broker"] != "herald") next
        s = r["scenario"]
        seen[s] = 1
        for (x in r) if (r[x] != "-") { k = s SUBSEP x; val[k, ++cnt[k]] = r[x] }
        runs[s]++
        if (r["errors"] > 0) bad[s]++
    }
    END {
        hpp = med("plain" SUBSEP "pub_rate"); hp = med("plain" SUBSEP "rate")
        ns = split("plain dlx-retry dlx-requeue dlx-idle priority ttl ttl-expire delayed", order, " ")
        for (i = 1; i <= ns; i++) {
            s = order[i]
            if (!(s in seen)) continue
            hr = med(s SUBSEP "rate"); hpr = med(s SUBSEP "pub_rate")
            note = med(s SUBSEP "lat_p50_ms") == "" ? "" : sprintf("%s p50 / p99 %s / %s ms", s == "delayed" ? "lateness" : "nack→redelivery", med(s SUBSEP "lat_p50_ms"), med(s SUBSEP "lat_p99_ms"))
            if (bad[s]) note = note sprintf("; runs with errors %d/%d", bad[s], runs[s])
            printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", s, f(hr, "%.0f"),
                (hr != "" && hp != "") ? sprintf("%.0f %%", 100 * hr / hp) : "–", f(hpr, "%.0f"),
                (hpr != "" && hpp != "") ? sprintf("%.0f %%", 100 * hpr / hpp) : "–", f(med(s SUBSEP "cpu_per_m"), "%.1f"),
                f(med(s SUBSEP "rss_peak_kb") == "" ? "" : med(s SUBSEP "rss_peak_kb") / 1024, "%.0f"), note
        }
    }' "$work/results")

backlog=$(awk -v fullf="$work/backlog_full" '
    BEGIN { while ((getline l < fullf) > 0) { split(l, a, " "); full[a[1]] = a[2] } }
    /^RESULT / && / scenario=backlog(-transient)? / {
        delete r
        for (i = 2; i <= NF; i++) { split($i, kv, "="); r[kv[1]] = kv[2] }
        q = r["scenario"] == "backlog" ? "durable, persistent messages" : "non-durable, transient messages"
        printf "| %s | %s | %d | %.1f | %.0f | %s | %.0f | %.0f | %s |\n", q, r["phase"], r["msgs"], r["secs"], r["rate"],
            r["cpu_per_m"], r["rss_peak_kb"] / 1024, r["rss_end_kb"] / 1024, r["errors"]
        f = full[r["scenario"]]
        if (r["phase"] == "publish" && f != "") printf "| %s | (queue full, 2 s later) | %d | – | – | – | %.0f | %.0f | – |\n", q, r["msgs"], f / 1024, f / 1024
    }' "$work/results")

rabbit_ver=$(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null || echo '?')
machine="$(nproc) vCPU, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), Linux $(uname -r)"
section=$(
    echo "### Run of $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- machine: $machine"
    echo "- command: \`make bench-amqp-features\` (\`bench/run_amqp_features.sh\`: BROKERS=\"$BROKERS\" COUNT=$COUNT RABBIT_COUNT=$RABBIT_COUNT BACKLOG=$BACKLOG REPEAT=$REPEAT HERALD_REPEAT=$HERALD_REPEAT SETTLE=$SETTLE FRESH=\"$FRESH\" AGAIN=$AGAIN NACK_PCT=$NACK_PCT REJECT_PCT=$REJECT_PCT BACKOFF=$BACKOFF EXPIRE_TTL=$EXPIRE_TTL DELAY_MAX=$DELAY_MAX TIMEOUT=$TIMEOUT RABBIT_TIMEOUT=$RABBIT_TIMEOUT)"
    echo "- tool: \`build/amqp_features\` on rabbitmq-c $(pkg-config --modversion librabbitmq 2>/dev/null || echo '?'); 100-byte persistent messages, confirms (window 1,000), consumers with manual acks (prefetch 1,000, ack every 100), publisher and consumers at once, fresh queues per run"
    echo "- started afresh for each scenario run, after a plain warm-up of $((COUNT / 5)) messages: ${FRESH:-none}$([ "$AGAIN" = 1 ] && echo ", each scenario run twice on its broker (AGAIN=1; the table shows first runs)"); any other broker serves all the scenarios of a repeat, with ${SETTLE} s between runs"
    echo "- load average (1/5/15 min): $load_before before, $load_after after"
    echo "- brokers: RabbitMQ $rabbit_ver (classic queues, default config); herald built from $rev; idle RSS $(awk -F'\t' '{ printf "%s%s %.0f MB", (NR > 1 ? ", " : ""), $1, $2 / 1024 }' "$work/idle")"
    echo
    echo "| scenario | herald msgs/s | herald vs plain | herald publish msgs/s (vs plain) | herald CPU-s per 1M | herald RSS MB at start → peak | rabbitmq msgs/s | rabbitmq vs plain | rabbitmq CPU-s per 1M | rabbitmq RSS MB at start → peak | herald / rabbitmq | notes |"
    echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    echo "$table"
    if [ -n "$again" ]; then
        echo
        echo "Each Herald scenario again, right after its first run on the same broker (phase=again: the broker grew to the scenario's working set once):"
        echo
        echo "| scenario | msgs/s | vs plain | publish msgs/s | publish vs plain | CPU-s per 1M | RSS peak MB | notes |"
        echo "|---|---:|---:|---:|---:|---:|---:|---|"
        echo "$again"
    fi
    if [ -n "$backlog" ]; then
        echo
        echo "Deep backlog (Herald, fresh broker, nobody consuming while publishing; a durable queue, then a non-durable one):"
        echo
        echo "| queue | phase | messages | seconds | msgs/s | broker CPU-s per 1M | RSS peak MB | RSS at end MB | errors |"
        echo "|---|---|---:|---:|---:|---:|---:|---:|---:|"
        echo "$backlog"
    fi
    if [ -s "$work/notes" ]; then
        echo
        echo "Problems in this run:"
        echo
        sed 's/^/- /; s/\t/: /' "$work/notes"
    fi
    echo
    echo "Every run (\`RESULT\` lines of \`build/amqp_features\`):"
    echo
    echo '```'
    sed -n 's/^RESULT //p' "$work/results"
    echo '```'
)
echo "$section"

if [ "$DOC" = 1 ]; then
    doc=${DOC_FILE:-docs/benchmarks.md}
    # The generated run sits inside the hand-written section's markers.
    begin='<!-- amqp-features-run:begin (generated by bench/run_amqp_features.sh) -->'
    end='<!-- amqp-features-run:end -->'
    [ -f "$doc" ] || printf '# Benchmarks\n' >"$doc"
    if ! grep -qF "$begin" "$doc"; then
        if grep -qF '<!-- amqp-features:end -->' "$doc"; then
            awk -v b="$begin" -v e="$end" '$0 == "<!-- amqp-features:end -->" { print b; print e } { print }' \
                "$doc" >"$doc.features.tmp2" && mv "$doc.features.tmp2" "$doc"
        else
            printf '\n<!-- amqp-features:begin -->\n%s\n%s\n<!-- amqp-features:end -->\n' "$begin" "$end" >>"$doc"
        fi
    fi
    printf '%s\n' "$section" >"$doc.features.tmp"
    awk -v b="$begin" -v e="$end" -v f="$doc.features.tmp" '
        $0 == b { print; while ((getline l < f) > 0) print l; skip = 1; next }
        $0 == e { skip = 0 }
        !skip { print }' "$doc" >"$doc.features.tmp2"
    mv "$doc.features.tmp2" "$doc"
    rm -f "$doc.features.tmp"
    echo "run_amqp_features: wrote $doc" >&2
fi
[ -s "$work/notes" ] && exit 1
grep -q ' errors=[1-9]' "$work/results" && exit 1
exit 0
