#!/bin/sh
# Kafka benchmark for Herald: starts build/herald on a fresh data dir and a
# free loopback port, runs build/kafka_bench against it (produce acks=1,
# produce acks=all, consume, fixed-rate end-to-end latency), measures the
# broker's CPU and RSS, stops it by PID and writes the results into the
# generated section of docs/benchmarks.md.
#
# Environment:
#   COUNT=1000000   messages per produce/consume phase
#   RATE=10000      latency phase rate (msgs/s), SECONDS_LAT=10 its length
#   FLUSH=always    herald --flush (always | interval:MS | never)
#   PERF=0          1: also profile the broker with perf during a produce run
#   REPEAT=3        runs of each phase; the table shows medians
#   LINGER=0        linger.ms of the latency phase producer
#   DOC=1           0: do not touch docs/benchmarks.md
#   HTTP_POLL=0     1: while the benchmark runs, a monitor reads /api/overview,
#                   /api/topics, /api/groups and /metrics every HTTP_POLL_MS
#                   (what a dashboard and a Prometheus scraper cost the broker)
#   HTTP_POLL_MS=100
set -eu

cd "$(dirname "$0")/.."
COUNT=${COUNT:-1000000}
RATE=${RATE:-10000}
SECONDS_LAT=${SECONDS_LAT:-10}
FLUSH=${FLUSH:-always}
PERF=${PERF:-0}
DOC=${DOC:-1}
REPEAT=${REPEAT:-3}
LINGER=${LINGER:-0}
HTTP_POLL=${HTTP_POLL:-0}
HTTP_POLL_MS=${HTTP_POLL_MS:-100}

if [ ! -x build/herald ]; then
    [ -f build/build.ninja ] || meson setup build --buildtype=release -Db_ndebug=true >/dev/null
    ninja -C build herald
fi
cc -O2 -Wall -Wextra -Wno-unused-parameter -o build/kafka_bench bench/kafka_bench.c bench/bench_common.c \
    $(pkg-config --cflags --libs rdkafka) -lpthread -lm

work=$(mktemp -d)
pid=""
perf_pid=""
poll_pid=""
stop_broker() {
    if [ -n "$poll_pid" ] && kill -0 "$poll_pid" 2>/dev/null; then kill "$poll_pid"; fi
    poll_pid=""
    if [ -n "$perf_pid" ] && kill -0 "$perf_pid" 2>/dev/null; then kill -INT "$perf_pid"; fi
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
        if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
    fi
    pid=""
}
cleanup() {
    stop_broker
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

status_kb() { awk -v k="$1:" '$1 == k { print $2 }' "/proc/$pid/status"; }

start_broker() {
    mkdir -p "$work/data"
    build/herald serve --http 127.0.0.1:0 --data "$work/data" --kafka 127.0.0.1:0 --flush "$FLUSH" \
        --log-level warn >"$work/herald.out" 2>"$work/herald.err" &
    pid=$!
    port=""
    i=0
    while [ -z "$port" ] && [ $i -lt 100 ]; do
        sleep 0.1
        port=$(sed -n 's/^herald: kafka port \([0-9][0-9]*\)$/\1/p' "$work/herald.out")
        i=$((i + 1))
    done
    if [ -z "$port" ]; then
        echo "run_kafka_bench: herald did not report its port" >&2
        cat "$work/herald.err" >&2
        exit 1
    fi
}

start_broker
sleep 0.5
rss_idle=$(status_kb VmRSS)
polls=""
if [ "$HTTP_POLL" = 1 ]; then
    hport=$(sed -n 's/^herald: http port \([0-9][0-9]*\)$/\1/p' "$work/herald.out")
    (
        n=0
        while kill -0 "$pid" 2>/dev/null; do
            for path in api/overview api/topics api/groups metrics; do
                curl -sf -o /dev/null "http://127.0.0.1:$hport/$path" && n=$((n + 1))
            done
            echo "$n" >"$work/polls"
            sleep "$(awk -v ms="$HTTP_POLL_MS" 'BEGIN { printf "%.3f", ms / 1000 }')"
        done
    ) &
    poll_pid=$!
fi

cmd="build/kafka_bench --brokers 127.0.0.1:$port --pid $pid --count $COUNT --rate $RATE --seconds $SECONDS_LAT --repeat $REPEAT --linger $LINGER"
rc=0
timeout 240 $cmd >"$work/table.md" 2>"$work/bench.err" || rc=$?
rss_peak=$(status_kb VmHWM)
rss_end=$(status_kb VmRSS)
[ "$HTTP_POLL" = 1 ] && polls=$(cat "$work/polls" 2>/dev/null || echo 0)
grep '^kafka_bench' "$work/bench.err" >&2 || true

profile=""
if [ "$PERF" = 1 ] && command -v perf >/dev/null; then
    perf record -g -o "$work/perf.data" -p "$pid" >/dev/null 2>&1 &
    perf_pid=$!
    sleep 0.5
    timeout 120 build/kafka_bench --brokers "127.0.0.1:$port" --mode produce --acks all \
        --count "$COUNT" --repeat 1 >/dev/null 2>&1 || true
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
    perf_pid=""
    profile=$(perf report -i "$work/perf.data" --stdio --no-children --sort symbol 2>/dev/null |
        grep -E '^ +[0-9.]+%' | head -10)
fi

# Broker stderr may hold warnings worth reading.
herald_warn=$(head -20 "$work/herald.err")

stop_broker

machine="$(nproc) vCPU, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), Linux $(uname -r)"
section=$(
    echo "### Run of $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    echo "- machine: $machine"
    echo "- command: \`make bench\` (\`bench/run_kafka_bench.sh\`: COUNT=$COUNT RATE=$RATE SECONDS_LAT=$SECONDS_LAT REPEAT=$REPEAT LINGER=$LINGER FLUSH=$FLUSH)"
    echo "- broker: \`herald serve --flush $FLUSH\`, fresh data dir, loopback; tool: \`${cmd%% --brokers*} --count $COUNT --rate $RATE --seconds $SECONDS_LAT --repeat $REPEAT --linger $LINGER\`"
    rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    if [ -n "$(git status --porcelain --untracked-files=no -- src 2>/dev/null)" ]; then rev="$rev + uncommitted changes in src/"; fi
    echo "- herald: built from $rev"
    [ -n "$polls" ] && echo "- HTTP monitor: /api/overview, /api/topics, /api/groups and /metrics every $HTTP_POLL_MS ms during the run ($polls answered requests)"
    echo "- payload: 100-byte messages, one partition, a fresh topic per phase; librdkafka $(pkg-config --modversion rdkafka)"
    echo
    grep -v "^Broker RSS now" "$work/table.md" 2>/dev/null || true
    echo
    echo "Broker RSS: idle ${rss_idle} kB after start, ${rss_end} kB after the run, peak (VmHWM) ${rss_peak} kB."
    [ "$rc" = 0 ] || echo "**The run reported errors (exit $rc).**"
    if [ -n "$profile" ]; then
        echo
        echo "perf (broker, produce acks=all, self time, top symbols):"
        echo
        echo '```'
        echo "$profile"
        echo '```'
    fi
    if [ -n "$herald_warn" ]; then
        echo
        echo "Broker warnings during the run (first lines):"
        echo
        echo '```'
        echo "$herald_warn"
        echo '```'
    fi
)
echo "$section"

if [ "$DOC" = 1 ]; then
    doc=docs/benchmarks.md
    begin='<!-- kafka-bench:begin (generated by bench/run_kafka_bench.sh) -->'
    end='<!-- kafka-bench:end -->'
    [ -f "$doc" ] || printf '# Benchmarks\n\n%s\n%s\n' "$begin" "$end" >"$doc"
    if ! grep -qF "$begin" "$doc"; then printf '\n%s\n%s\n' "$begin" "$end" >>"$doc"; fi
    printf '%s\n' "$section" >"$doc.section.tmp"
    awk -v b="$begin" -v e="$end" -v f="$doc.section.tmp" '
        $0 == b { print; while ((getline l < f) > 0) print l; skip = 1; next }
        $0 == e { skip = 0 }
        !skip { print }' "$doc" >"$doc.tmp"
    mv "$doc.tmp" "$doc"
    rm -f "$doc.section.tmp"
    echo "run_kafka_bench: wrote $doc" >&2
fi
exit "$rc"
