#!/usr/bin/env bash
# kcat (Debian's package, built on librdkafka 2.0.2) interop checks against strait's Kafka listener.
#   tests/interop/kcat/run.sh          # starts $STRAIT_BIN (default <repo>/target/debug/strait) with both listeners
#                                      # on port 0 and a temp data dir, and stops it after
#   STRAIT_KAFKA=127.0.0.1:9092 tests/interop/kcat/run.sh    # a server you started
# Installs kcat with apt-get (update once, then install) when it is not on PATH; that needs root.
# Prints PASS/FAIL per check and ends with `N passed, N failed`; exit status is non-zero if any check failed.
# KCAT_DEBUG=1 adds `-d broker,protocol` to the metadata listing so a connection failure shows librdkafka's view.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$here/../../.." && pwd)"

if ! command -v kcat >/dev/null 2>&1; then
  echo "# kcat not found: installing Debian's package"
  if [ "$(id -u)" -ne 0 ]; then echo "installing kcat needs root (apt-get install -y kcat)" >&2; exit 2; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq || { echo "apt-get update failed" >&2; exit 2; }
  apt-get install -y -qq --no-install-recommends kcat >/dev/null || { echo "apt-get install kcat failed" >&2; exit 2; }
fi
echo "# $(kcat -V 2>&1 | grep -m1 '^Version')"

work="$(mktemp -d /tmp/strait-kcat-work.XXXXXX)"
source "$repo_root/tests/interop/lib/strait.sh"
kafka="${STRAIT_KAFKA:-}"
if [ -z "$kafka" ]; then
  start_strait kcat-interop || exit 2
  kafka="$STRAIT_KAFKA"
fi

run_id="$(date +%s%N | tail -c 9)"
topic="kcat-$run_id"
passed=0; failed=0
pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() { # name, detail, [file whose tail to show]
  failed=$((failed + 1)); echo "FAIL $1: $2"
  if [ -n "${3:-}" ] && [ -s "$3" ]; then tail -n 15 "$3" | sed 's/^/#     /'; fi
}
# kc: kcat against strait with a bound on time; stderr goes to $work/err.
kc() { timeout "${KC_TIMEOUT:-30}" kcat -b "$kafka" -X socket.timeout.ms=10000 "$@" 2> "$work/err"; }

# 1. Metadata listing: the first thing any librdkafka client does (after ApiVersions).
dbg=(); [ -n "${KCAT_DEBUG:-}" ] && dbg=(-d broker,protocol)
if kc -L "${dbg[@]}" -m 15 > "$work/meta"; then rc=0; else rc=$?; fi
# The embedded backend is one broker (node 0) at the bootstrap address; the Kafka backend's
# pass-through (KAFKA_PORT_PER_BROKER=true) serves broker n at bootstrap port + 1 + n.
if [ "${KAFKA_PORT_PER_BROKER:-false}" = true ]; then
  want_broker="broker 1 at ${kafka%:*}:$((${kafka##*:} + 2))"
else
  want_broker="broker 0 at $kafka"
fi
if [ $rc -eq 0 ] && grep -q " 1 brokers:" "$work/meta" && grep -q "$want_broker" "$work/meta" \
   && ! grep -q '^%[0-3]|' "$work/err"; then
  pass "kcat -L lists one broker at $kafka"
else
  fail "kcat -L lists one broker at $kafka" "exit $rc; stdout: $(tr '\n' ' ' < "$work/meta" | cut -c1-300)" "$work/err"
fi

# 2. Produce keyed lines (-K:) to a new topic; the topic is auto-created (4 partitions by default).
: > "$work/in"
for i in $(seq 0 299); do echo "key-$((i % 30)):v-$((i % 30))-$((i / 30))" >> "$work/in"; done
if kc -P -K: -t "$topic" -X acks=all < "$work/in"; then
  pass "kcat -P -K: produces 300 keyed lines (auto-creates the topic)"
else
  fail "kcat -P -K: produces 300 keyed lines (auto-creates the topic)" "exit $?" "$work/err"
fi

if kc -L -t "$topic" > "$work/meta-t" && grep -q "topic \"$topic\" with 4 partitions" "$work/meta-t"; then
  pass "kcat -L -t shows the auto-created topic with 4 partitions"
else
  fail "kcat -L -t shows the auto-created topic with 4 partitions" "$(tr '\n' ' ' < "$work/meta-t" | cut -c1-300)" "$work/err"
fi

# 3. Consume it back from the beginning and compare (as multisets), then per-key order.
check_consumed() { # name, file with "partition offset key:value" lines, expected file of key:value lines
  local name="$1" got="$2" want="$3"
  if ! diff <(cut -d' ' -f3- "$got" | sort) <(sort "$want") > "$work/diff"; then
    fail "$name" "consumed $(wc -l < "$got") lines, produced $(wc -l < "$want"); diff (consumed < > produced):" "$work/diff"
    return
  fi
  # Same key -> one partition; per key the sequence numbers arrive in order; offsets per partition increase.
  local bad
  bad="$(awk '{ split($3, kv, ":"); k = kv[1]; n = split(kv[2], parts, "-"); s = parts[n] + 0
              if ((k in part) && part[k] != $1) { print "key " k " on partitions " part[k] " and " $1; exit }
              part[k] = $1
              if ((k in seq) && s != seq[k] + 1) { print "key " k " seq " s " after " seq[k]; exit }
              if (!(k in seq) && s != 0) { print "key " k " starts at seq " s; exit }
              seq[k] = s
              if (($1 in off) && $2 != off[$1] + 1) { print "partition " $1 " offset " $2 " after " off[$1]; exit }
              off[$1] = $2 }' "$got")"
  if [ -n "$bad" ]; then fail "$name" "$bad"; else pass "$name"; fi
}
KC_TIMEOUT=30 kc -C -t "$topic" -o beginning -e -f '%p %o %k:%s\n' > "$work/out"; rc=$?
if [ $rc -ne 0 ]; then
  fail "kcat -C -o beginning -e reads back every line, per-key order" "exit $rc after $(wc -l < "$work/out") lines" "$work/err"
else
  check_consumed "kcat -C -o beginning -e reads back every line, per-key order" "$work/out" "$work/in"
fi

# 4. ListOffsets through kcat -Q: -2 = earliest, -1 = latest, per partition.
q_ok=1; q_detail=""
for p in 0 1 2 3; do
  n="$(awk -v p="$p" '$1 == p' "$work/out" | wc -l)"
  lo="$(kc -Q -t "$topic:$p:-2" | sed -n 's/.*offset \(-\?[0-9]\+\).*/\1/p')"
  hi="$(kc -Q -t "$topic:$p:-1" | sed -n 's/.*offset \(-\?[0-9]\+\).*/\1/p')"
  if [ "$lo" != 0 ] || [ "$hi" != "$n" ]; then q_ok=0; q_detail+="partition $p: earliest '$lo' latest '$hi' (consumed $n); "; fi
done
if [ $q_ok -eq 1 ]; then pass "kcat -Q: earliest 0 and latest = records per partition"
else fail "kcat -Q: earliest 0 and latest = records per partition" "$q_detail" "$work/err"; fi

# 5. Balanced consumer group (-G): JoinGroup/SyncGroup/Heartbeat/OffsetFetch/OffsetCommit/LeaveGroup via librdkafka.
group="kcat-g-$run_id"
gconsume() { KC_TIMEOUT=60 kc -G "$group" -X auto.offset.reset=earliest -e -f '%p %o %k:%s\n' "$topic"; }
gconsume > "$work/gout"; rc=$?
if [ $rc -ne 0 ]; then
  fail "kcat -G consumer group reads every line" "exit $rc after $(wc -l < "$work/gout") lines" "$work/err"
else
  check_consumed "kcat -G consumer group reads every line" "$work/gout" "$work/in"
fi
gconsume > "$work/gout2"; rc=$?
if [ $rc -eq 0 ] && [ ! -s "$work/gout2" ]; then
  pass "kcat -G again: the group resumes from its committed offsets (nothing re-read)"
else
  fail "kcat -G again: the group resumes from its committed offsets (nothing re-read)" "exit $rc, $(wc -l < "$work/gout2") lines re-read (first: $(head -1 "$work/gout2"))" "$work/err"
fi
printf 'key-1:v-1-10\nkey-2:v-2-10\nkey-3:v-3-10\n' > "$work/in2"
kc -P -K: -t "$topic" < "$work/in2" || fail "produce 3 more lines" "exit $?" "$work/err"
gconsume > "$work/gout3"; rc=$?
if [ $rc -eq 0 ] && diff <(cut -d' ' -f3- "$work/gout3" | sort) <(sort "$work/in2") > /dev/null; then
  pass "kcat -G after 3 more lines: reads exactly those 3"
else
  fail "kcat -G after 3 more lines: reads exactly those 3" "exit $rc, got: $(cut -d' ' -f3- "$work/gout3" | tr '\n' ' ' | cut -c1-200)" "$work/err"
fi

# 6. Two balanced members of one group split the 4 partitions (librdkafka's range assignor, eager protocol).
group2="kcat-g2-$run_id"
member() { timeout 60 kcat -b "$kafka" -G "$group2" -X auto.offset.reset=earliest -f '%p %o %k:%s\n' "$topic" > "$work/m$1.out" 2> "$work/m$1.err" & }
owned() { grep 'rebalanced' "$work/m$1.err" | tail -1 | grep 'assigned:' | grep -o '\[[0-9]*\]' | tr -d '[]' | sort; }
member 1; m1=$!; member 2; m2=$!
split=""
for _ in $(seq 1 300); do
  o1="$(owned 1)"; o2="$(owned 2)"
  if [ -n "$o1" ] && [ -n "$o2" ] && [ "$(printf '%s\n%s\n' "$o1" "$o2" | sort -u | wc -l)" -eq 4 ] \
     && [ "$(printf '%s\n%s\n' "$o1" "$o2" | wc -l)" -eq 4 ]; then split=1; break; fi
  sleep 0.1
done
if [ -n "$split" ]; then
  pass "two kcat -G members split the 4 partitions ($(echo $o1) | $(echo $o2))"
else
  fail "two kcat -G members split the 4 partitions" "member 1 owns '$(echo $o1)', member 2 owns '$(echo $o2)' after 30s" "$work/m2.err"
fi
# Both keep consuming until the whole topic has been read between them, then stop (SIGTERM: a clean close).
want_n=$(( $(wc -l < "$work/in") + $(wc -l < "$work/in2") ))
for _ in $(seq 1 200); do
  [ "$(cat "$work/m1.out" "$work/m2.out" | cut -d' ' -f3- | sort -u | wc -l)" -ge "$want_n" ] && break
  sleep 0.1
done
kill -TERM "$m1" "$m2" 2>/dev/null; wait "$m1" "$m2" 2>/dev/null
got_n="$(cat "$work/m1.out" "$work/m2.out" | cut -d' ' -f3- | sort -u | wc -l)"
if [ "$got_n" -eq "$want_n" ]; then
  pass "two kcat -G members together read all $want_n lines"
else
  fail "two kcat -G members together read all $want_n lines" "read $got_n distinct lines" "$work/m1.err"
fi

# 7. librdkafka's idempotent producer (InitProducerId, sequence numbers) and the compression codecs.
t="kcat-idem-$run_id"
for i in $(seq 0 199); do echo "k$((i % 10)):idem-$i"; done > "$work/in-idem"
if kc -P -K: -t "$t" -X enable.idempotence=true < "$work/in-idem" \
   && kc -C -t "$t" -o beginning -e -f '%k:%s\n' > "$work/out-idem" \
   && diff <(sort "$work/out-idem") <(sort "$work/in-idem") > /dev/null; then
  pass "kcat -X enable.idempotence=true produces 200 lines, read back exactly once"
else
  fail "kcat -X enable.idempotence=true produces 200 lines, read back exactly once" "read $(wc -l < "$work/out-idem" 2>/dev/null || echo 0) lines" "$work/err"
fi

for codec in gzip snappy lz4 zstd; do
  t="kcat-$codec-$run_id"
  for i in $(seq 0 49); do echo "k$i:$codec-$i-$(printf 'x%.0s' $(seq 1 40))"; done > "$work/in-$codec"
  if ! kc -P -K: -z "$codec" -t "$t" < "$work/in-$codec"; then
    fail "kcat -z $codec produce and read back" "produce exit $?" "$work/err"; continue
  fi
  kc -C -t "$t" -o beginning -e -f '%k:%s\n' > "$work/out-$codec"; rc=$?
  if [ $rc -eq 0 ] && diff <(sort "$work/out-$codec") <(sort "$work/in-$codec") > /dev/null; then
    pass "kcat -z $codec produce and read back"
  else
    fail "kcat -z $codec produce and read back" "consume exit $rc, $(wc -l < "$work/out-$codec") of 50 lines" "$work/err"
  fi
done

rm -rf "$work"
strait_log_tail_on_failure "$failed"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
