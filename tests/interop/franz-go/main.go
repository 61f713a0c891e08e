// franz-go (github.com/twmb/franz-go) interop checks against strait's Kafka listener.
//
//	STRAIT_KAFKA=127.0.0.1:9092 [STRAIT_KINESIS=http://127.0.0.1:4567] go run .
//
// Every check prints PASS or FAIL; the last line is `N passed, N failed` and the exit status is
// non-zero if anything failed. FRANZ_LOG=debug|info|warn sets franz-go's own logging (stderr,
// default warn). Topic and group names carry a per-run suffix, so a long-running server can be
// reused.
package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"
)

const (
	partitions = 4
	numKeys    = 200
	numRecords = 5000
)

var (
	seed    = os.Getenv("STRAIT_KAFKA")
	kinesis = strings.TrimRight(os.Getenv("STRAIT_KINESIS"), "/")
	// STRAIT_BACKEND=kinesis: strait stores in Kinesis, whose records carry their arrival
	// time (not the producer's timestamp) and no headers, and which routes a PutRecord by
	// MD5 of its key (docs/compatibility.md, "Kafka on Kinesis").
	onKinesis = os.Getenv("STRAIT_BACKEND") == "kinesis"
	runID     = strconv.FormatInt(time.Now().UnixNano()%1e10, 36)
	topic     = "franz-main-" + runID
	group1    = "franz-g1-" + runID
	group2    = "franz-g2-" + runID

	passed, failed int
)

// arrivedAfter: a Kinesis arrival time is at or after the producer's timestamp, within a minute.
func arrivedAfter(arrival, produced int64) bool {
	return arrival >= produced && arrival-produced < 60_000
}

func check(name string, err error) bool {
	if err == nil {
		passed++
		fmt.Printf("PASS %s\n", name)
		return true
	}
	failed++
	fmt.Printf("FAIL %s: %v\n", name, err)
	return false
}

func skip(name, why string) {
	failed++
	fmt.Printf("FAIL %s: not run: %s\n", name, why)
}

// ---- logging: franz-go's messages go to stderr at the chosen level; every message is also kept
// so a check can ask whether franz-go logged something (the OFFSET_OUT_OF_RANGE reset).

type logger struct {
	level kgo.LogLevel
	mu    sync.Mutex
	seen  []string
}

func (l *logger) Level() kgo.LogLevel { return max(l.level, kgo.LogLevelInfo) }
func (l *logger) Log(level kgo.LogLevel, msg string, kv ...any) {
	line := msg
	for i := 0; i+1 < len(kv); i += 2 {
		line += fmt.Sprintf(" %v=%v", kv[i], kv[i+1])
	}
	l.mu.Lock()
	l.seen = append(l.seen, line)
	l.mu.Unlock()
	if level <= l.level {
		fmt.Fprintf(os.Stderr, "[franz-go %s] %s\n", level, line)
	}
}
func (l *logger) saw(substr string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.seen {
		if strings.Contains(s, substr) {
			return s
		}
	}
	return ""
}

var logs = &logger{level: kgo.LogLevelWarn}

func newClient(opts ...kgo.Opt) (*kgo.Client, error) {
	base := []kgo.Opt{kgo.SeedBrokers(seed), kgo.WithLogger(logs), kgo.ClientID("strait-interop-franzgo")}
	return kgo.NewClient(append(base, opts...)...)
}

func ctxT(d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), d)
}

// javaPartition is what the Java producer's default partitioner picks for a non-null key:
// toPositive(murmur2(key)) % n, written here independently of franz-go.
func javaPartition(key []byte, n int32) int32 {
	return int32(murmur2(key)&0x7fffffff) % n
}

func murmur2(data []byte) uint32 {
	const m = 0x5bd1e995
	const r = 24
	length := len(data)
	h := uint32(0x9747b28c) ^ uint32(length)
	for i := 0; i+4 <= length; i += 4 {
		k := uint32(data[i]) | uint32(data[i+1])<<8 | uint32(data[i+2])<<16 | uint32(data[i+3])<<24
		k *= m
		k ^= k >> r
		k *= m
		h *= m
		h ^= k
	}
	tail := length &^ 3
	switch length % 4 {
	case 3:
		h ^= uint32(data[tail+2]) << 16
		fallthrough
	case 2:
		h ^= uint32(data[tail+1]) << 8
		fallthrough
	case 1:
		h ^= uint32(data[tail])
		h *= m
	}
	h ^= h >> 13
	h *= m
	h ^= h >> 15
	return h
}

type rec struct {
	key       string
	seq       int
	partition int32
	offset    int64
	ts        int64
}

func keyOf(i int) string { return fmt.Sprintf("key-%03d", i%numKeys) }

// produced state shared by later checks.
var (
	producedMu  sync.Mutex
	produced    = map[string]rec{} // "key:seq" -> record as acknowledged
	perPartEnd  = map[int32]int64{}
	topicID     [16]byte
	brokerID    int32 = -1
	produceOK   bool
	extraBefore int // records appended after the first consumer group pass
	adminClient *kgo.Client
)

func main() {
	if seed == "" {
		fmt.Fprintln(os.Stderr, "STRAIT_KAFKA (host:port of strait's Kafka listener) is required")
		os.Exit(2)
	}
	switch os.Getenv("FRANZ_LOG") {
	case "debug":
		logs.level = kgo.LogLevelDebug
	case "info":
		logs.level = kgo.LogLevelInfo
	case "none":
		logs.level = kgo.LogLevelNone
	}
	fmt.Printf("# franz-go interop against %s (topic %s)\n", seed, topic)

	// murmur2 self-test with vectors from Kafka's UtilsTest, so the partition checks below
	// compare franz-go and strait against a hash known to be the Java one.
	check("murmur2 reference vectors (Java's Utils.murmur2)", func() error {
		for s, want := range map[string]int32{"21": -973932308, "foobar": -790332482, "a-little-bit-long-string": -985981536, "a-little-bit-longer-string": -1486304829, "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971} {
			if got := int32(murmur2([]byte(s))); got != want {
				return fmt.Errorf("murmur2(%q) = %d, want %d", s, got, want)
			}
		}
		return nil
	}())

	adminCl, err := newClient()
	adminClient = adminCl
	if err != nil {
		check("client", err)
		finish()
	}
	defer adminCl.Close()
	adm := kadm.NewClient(adminCl)

	checkConnect(adm)
	checkCreateTopic(adm)
	checkProduce()
	checkListOffsets(adm)
	checkGroupConsume(adm)
	checkGroupResume(adm)
	checkTwoMembers(adm)
	checkGroupsAdmin(adm)
	checkRawFetchOutOfRange(adm)
	checkClientResetOnOutOfRange()
	checkCompressionAndAutoCreate(adm)
	checkKinesisCrossPartitioning(adm)
	finish()
}

func finish() {
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if failed > 0 {
		os.Exit(1)
	}
	os.Exit(0)
}

// ---------------------------------------------------------------------------------------------

func checkConnect(adm *kadm.Client) {
	ctx, cancel := ctxT(20 * time.Second)
	defer cancel()
	check("ApiVersions: Produce/Fetch/JoinGroup/InitProducerId advertised", func() error {
		vs, err := adm.ApiVersions(ctx)
		if err != nil {
			return err
		}
		for _, v := range vs {
			if v.Err != nil {
				return fmt.Errorf("broker %d: %w", v.NodeID, v.Err)
			}
			for _, k := range []int16{0, 1, 2, 3, 11, 22} {
				if _, _, ok := v.KeyVersions(k); !ok {
					return fmt.Errorf("broker %d does not advertise api key %d", v.NodeID, k)
				}
			}
			fmt.Printf("#   broker %d looks like Kafka %s\n", v.NodeID, v.VersionGuess())
		}
		return nil
	}())
	check("Metadata: one broker advertised at the seed address", func() error {
		m, err := adm.BrokerMetadata(ctx)
		if err != nil {
			return err
		}
		if len(m.Brokers) != 1 {
			return fmt.Errorf("want 1 broker, got %+v", m.Brokers)
		}
		b := m.Brokers[0]
		brokerID = b.NodeID
		want := seed
		// The Kafka backend's pass-through serves broker n at the seed port + 1 + n.
		if os.Getenv("KAFKA_PORT_PER_BROKER") == "true" {
			host, port, _ := net.SplitHostPort(seed)
			p, _ := strconv.Atoi(port)
			want = net.JoinHostPort(host, strconv.Itoa(p+1+int(b.NodeID)))
		}
		if got := net.JoinHostPort(b.Host, strconv.Itoa(int(b.Port))); got != want {
			return fmt.Errorf("broker advertised as %s, want %s", got, want)
		}
		return nil
	}())
}

func checkCreateTopic(adm *kadm.Client) {
	ctx, cancel := ctxT(20 * time.Second)
	defer cancel()
	check("kadm CreateTopic (4 partitions)", func() error {
		r, err := adm.CreateTopic(ctx, partitions, 1, nil, topic)
		if err != nil {
			return err
		}
		if r.Err != nil {
			return fmt.Errorf("%v (%s)", r.Err, r.ErrMessage)
		}
		return nil
	}())
	check("kadm CreateTopic again -> TOPIC_ALREADY_EXISTS", func() error {
		r, err := adm.CreateTopic(ctx, partitions, 1, nil, topic)
		if err == nil {
			err = r.Err
		}
		if !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("want TOPIC_ALREADY_EXISTS, got %v", err)
		}
		return nil
	}())
	check("Metadata: topic has 4 partitions led by the broker, with a topic ID", func() error {
		m, err := adm.Metadata(ctx, topic)
		if err != nil {
			return err
		}
		t, ok := m.Topics[topic]
		if !ok || t.Err != nil {
			return fmt.Errorf("topic missing from metadata: %+v", t)
		}
		if len(t.Partitions) != partitions {
			return fmt.Errorf("want %d partitions, got %d", partitions, len(t.Partitions))
		}
		for p, d := range t.Partitions {
			if d.Err != nil || d.Leader != brokerID {
				return fmt.Errorf("partition %d: leader %d err %v", p, d.Leader, d.Err)
			}
		}
		topicID = t.ID
		if topicID == ([16]byte{}) {
			return errors.New("topic ID is all zero (Fetch v13+ needs topic IDs)")
		}
		return nil
	}())
}

func checkProduce() {
	name := fmt.Sprintf("produce %d keyed records (default partitioner, idempotent, snappy)", numRecords)
	cl, err := newClient(kgo.DefaultProduceTopic(topic))
	if err != nil {
		check(name, err)
		return
	}
	defer cl.Close()
	ctx, cancel := ctxT(60 * time.Second)
	defer cancel()

	var (
		mu      sync.Mutex
		errs    []string
		results []*kgo.Record
		pids    = map[int64]bool{}
	)
	start := time.Now()
	for i := 0; i < numRecords; i++ {
		key := keyOf(i)
		seq := i / numKeys
		r := &kgo.Record{
			Key:     []byte(key),
			Value:   []byte(fmt.Sprintf("%s:%d", key, seq)),
			Headers: []kgo.RecordHeader{{Key: "seq", Value: []byte(strconv.Itoa(seq))}},
		}
		cl.Produce(ctx, r, func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if len(errs) < 5 {
					errs = append(errs, fmt.Sprintf("%s: %v", r.Value, err))
				}
				return
			}
			pids[r.ProducerID] = true
			results = append(results, r)
		})
	}
	if err := cl.Flush(ctx); err != nil {
		errs = append(errs, "flush: "+err.Error())
	}
	mu.Lock()
	defer mu.Unlock()
	fmt.Printf("#   produced %d records in %v\n", len(results), time.Since(start).Round(time.Millisecond))
	produceOK = check(name, func() error {
		if len(errs) > 0 {
			return fmt.Errorf("%d acked of %d; errors: %s", len(results), numRecords, strings.Join(errs, "; "))
		}
		if len(results) != numRecords {
			return fmt.Errorf("%d acked of %d", len(results), numRecords)
		}
		return nil
	}())
	for _, r := range results {
		seq, _ := strconv.Atoi(strings.SplitN(string(r.Value), ":", 2)[1])
		produced[string(r.Value)] = rec{string(r.Key), seq, r.Partition, r.Offset, r.Timestamp.UnixMilli()}
	}
	check("idempotent producer: InitProducerId gave one producer id >= 0", func() error {
		if len(pids) != 1 {
			return fmt.Errorf("producer ids on acked records: %v", pids)
		}
		for p := range pids {
			if p < 0 {
				return fmt.Errorf("producer id %d: records were not produced idempotently", p)
			}
		}
		return nil
	}())
	check("partition of every key = toPositive(murmur2(key)) % 4 (Java default)", func() error {
		bad := 0
		var first string
		used := map[int32]int{}
		for _, r := range produced {
			used[r.partition]++
			if want := javaPartition([]byte(r.key), partitions); r.partition != want {
				bad++
				if first == "" {
					first = fmt.Sprintf("%s -> partition %d, Java picks %d", r.key, r.partition, want)
				}
			}
		}
		if bad > 0 {
			return fmt.Errorf("%d records off: %s", bad, first)
		}
		if len(used) != partitions {
			return fmt.Errorf("only partitions %v used", used)
		}
		return nil
	}())
	check("acked offsets per partition are 0..n-1, each once, in per-key produce order", func() error {
		byPart := map[int32][]rec{}
		for _, r := range produced {
			byPart[r.partition] = append(byPart[r.partition], r)
		}
		for p, rs := range byPart {
			sort.Slice(rs, func(i, j int) bool { return rs[i].offset < rs[j].offset })
			last := map[string]int{}
			for i, r := range rs {
				if r.offset != int64(i) {
					return fmt.Errorf("partition %d: offset #%d is %d", p, i, r.offset)
				}
				if s, ok := last[r.key]; ok && r.seq <= s {
					return fmt.Errorf("partition %d: %s seq %d at offset %d after seq %d", p, r.key, r.seq, r.offset, s)
				}
				last[r.key] = r.seq
			}
			perPartEnd[p] = int64(len(rs))
		}
		return nil
	}())
}

func checkListOffsets(adm *kadm.Client) {
	ctx, cancel := ctxT(20 * time.Second)
	defer cancel()
	check("raw ListOffsets at a timestamp after every record -> offset -1, timestamp -1 (as Kafka)", func() error {
		p, v, err := rawListOffsets(adm, time.Now().Add(time.Hour).UnixMilli())
		if err != nil {
			return fmt.Errorf("v%d: %w", v, err)
		}
		if p.ErrorCode != 0 || p.Offset != -1 || p.Timestamp != -1 {
			return fmt.Errorf("v%d: error %v offset %d timestamp %d", v, kerr.ErrorForCode(p.ErrorCode), p.Offset, p.Timestamp)
		}
		return nil
	}())
	check("raw ListOffsets at timestamp 0 -> offset 0 with the first record's timestamp", func() error {
		p, v, err := rawListOffsets(adm, 0)
		if err != nil {
			return fmt.Errorf("v%d: %w", v, err)
		}
		var first rec
		for _, r := range produced {
			if r.partition == 0 && r.offset == 0 {
				first = r
			}
		}
		tsOK := p.Timestamp == first.ts
		if onKinesis {
			tsOK = arrivedAfter(p.Timestamp, first.ts)
		}
		if p.ErrorCode != 0 || p.Offset != 0 || !tsOK {
			return fmt.Errorf("v%d: error %v offset %d timestamp %d (first record's %d)", v, kerr.ErrorForCode(p.ErrorCode), p.Offset, p.Timestamp, first.ts)
		}
		return nil
	}())
	check("ListOffsets: start offsets are 0", func() error {
		l, err := adm.ListStartOffsets(ctx, topic)
		if err != nil {
			return err
		}
		return expectOffsets(l, func(int32) int64 { return 0 })
	}())
	check("ListOffsets: end offsets = records acked per partition", func() error {
		if !produceOK {
			return errors.New("produce failed")
		}
		l, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			return err
		}
		return expectOffsets(l, func(p int32) int64 { return perPartEnd[p] })
	}())
	check("ListOffsets by timestamp: before the first record -> 0, in the future -> end", func() error {
		l, err := adm.ListOffsetsAfterMilli(ctx, time.Now().Add(-time.Hour).UnixMilli(), topic)
		if err != nil {
			return err
		}
		if err := expectOffsets(l, func(int32) int64 { return 0 }); err != nil {
			return fmt.Errorf("an hour ago: %w", err)
		}
		l, err = adm.ListOffsetsAfterMilli(ctx, time.Now().Add(time.Hour).UnixMilli(), topic)
		if err != nil {
			return err
		}
		if err := expectOffsets(l, func(p int32) int64 { return perPartEnd[p] }); err != nil {
			return fmt.Errorf("an hour ahead: %w", err)
		}
		return nil
	}())
}

// rawListOffsets asks for partition 0's offset at timestamp ts (-1 latest, -2 earliest, else millis).
func rawListOffsets(adm *kadm.Client, ts int64) (kmsg.ListOffsetsResponseTopicPartition, int16, error) {
	ctx, cancel := ctxT(15 * time.Second)
	defer cancel()
	req := kmsg.NewPtrListOffsetsRequest()
	req.ReplicaID = -1
	t := kmsg.NewListOffsetsRequestTopic()
	t.Topic = topic
	p := kmsg.NewListOffsetsRequestTopicPartition()
	p.Partition = 0
	p.CurrentLeaderEpoch = -1
	p.Timestamp = ts
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, adminClient.Broker(int(brokerID)))
	if err != nil {
		return kmsg.ListOffsetsResponseTopicPartition{}, req.Version, err
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return kmsg.ListOffsetsResponseTopicPartition{}, req.Version, fmt.Errorf("response shape: %d topics", len(resp.Topics))
	}
	return resp.Topics[0].Partitions[0], req.Version, nil
}

func expectOffsets(l kadm.ListedOffsets, want func(int32) int64) error {
	if err := l.Error(); err != nil {
		return err
	}
	ps := l[topic]
	if len(ps) != partitions {
		return fmt.Errorf("%d partitions listed", len(ps))
	}
	for p, o := range ps {
		if o.Err != nil {
			return fmt.Errorf("partition %d: %v", p, o.Err)
		}
		if o.Offset != want(p) {
			return fmt.Errorf("partition %d: offset %d, want %d", p, o.Offset, want(p))
		}
	}
	return nil
}

// ---------------------------------------------------------------------------------------------

func checkGroupConsume(adm *kadm.Client) {
	name := fmt.Sprintf("consumer group %s: consume all %d records from the start", group1, numRecords)
	cl, err := newClient(
		kgo.ConsumerGroup(group1), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(),
		kgo.FetchMaxWait(500*time.Millisecond),
	)
	if err != nil {
		check(name, err)
		return
	}
	defer cl.Close()
	got, fetchErrs := pollN(cl, numRecords, 60*time.Second)
	if !check(name, func() error {
		if len(fetchErrs) > 0 {
			return fmt.Errorf("%d of %d records; fetch errors: %s", len(got), numRecords, strings.Join(fetchErrs, "; "))
		}
		if len(got) != numRecords {
			return fmt.Errorf("%d of %d records within 60s", len(got), numRecords)
		}
		return nil
	}()) {
		return
	}
	check("consumed: no duplicates, every acked record present with its partition/offset/timestamp/header", func() error {
		seen := map[string]bool{}
		for _, r := range got {
			v := string(r.Value)
			if seen[v] {
				return fmt.Errorf("duplicate %s", v)
			}
			seen[v] = true
			p, ok := produced[v]
			if !ok {
				return fmt.Errorf("unexpected record %s", v)
			}
			if r.Partition != p.partition || r.Offset != p.offset {
				return fmt.Errorf("%s at %d/%d, acked at %d/%d", v, r.Partition, r.Offset, p.partition, p.offset)
			}
			if string(r.Key) != p.key {
				return fmt.Errorf("%s has key %q", v, r.Key)
			}
			if onKinesis {
				if !arrivedAfter(r.Timestamp.UnixMilli(), p.ts) || len(r.Headers) != 0 {
					return fmt.Errorf("%s timestamp %d (produced at %d), headers %+v: want the arrival time and none", v, r.Timestamp.UnixMilli(), p.ts, r.Headers)
				}
				continue
			}
			if r.Timestamp.UnixMilli() != p.ts {
				return fmt.Errorf("%s timestamp %d, produced with %d", v, r.Timestamp.UnixMilli(), p.ts)
			}
			if len(r.Headers) != 1 || r.Headers[0].Key != "seq" || string(r.Headers[0].Value) != strconv.Itoa(p.seq) {
				return fmt.Errorf("%s headers %+v", v, r.Headers)
			}
		}
		return nil
	}())
	check("consumed: per-key order (seq 0,1,2,... for every key)", func() error {
		next := map[string]int{}
		for _, r := range got {
			parts := strings.SplitN(string(r.Value), ":", 2)
			seq, _ := strconv.Atoi(parts[1])
			if seq != next[parts[0]] {
				return fmt.Errorf("%s: got seq %d, expected %d", parts[0], seq, next[parts[0]])
			}
			next[parts[0]]++
		}
		return nil
	}())
	ctx, cancel := ctxT(20 * time.Second)
	defer cancel()
	check("CommitUncommittedOffsets", cl.CommitUncommittedOffsets(ctx))
	check("kadm FetchOffsets: committed offsets = end offsets", func() error {
		os, err := adm.FetchOffsets(ctx, group1)
		if err != nil {
			return err
		}
		if err := os.Error(); err != nil {
			return err
		}
		for p := int32(0); p < partitions; p++ {
			o, ok := os.Lookup(topic, p)
			if !ok {
				return fmt.Errorf("no committed offset for partition %d (%v)", p, os)
			}
			if o.At != perPartEnd[p] {
				return fmt.Errorf("partition %d committed %d, end %d", p, o.At, perPartEnd[p])
			}
		}
		return nil
	}())
}

// pollN polls until n records arrived (or the timeout), returning them in arrival order.
func pollN(cl *kgo.Client, n int, timeout time.Duration) ([]*kgo.Record, []string) {
	ctx, cancel := ctxT(timeout)
	defer cancel()
	var out []*kgo.Record
	var errs []string
	for len(out) < n && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) && len(errs) < 5 {
				errs = append(errs, fmt.Sprintf("%s/%d: %v", t, p, err))
			}
		})
		out = append(out, fs.Records()...)
	}
	return out, errs
}

func checkGroupResume(adm *kadm.Client) {
	name := "group resumes from committed offsets: a new member gets only the 20 newer records"
	if !produceOK {
		skip(name, "produce failed")
		return
	}
	pcl, err := newClient(kgo.DefaultProduceTopic(topic))
	if err != nil {
		check(name, err)
		return
	}
	ctx, cancel := ctxT(20 * time.Second)
	defer cancel()
	var rs []*kgo.Record
	for i := 0; i < 20; i++ {
		rs = append(rs, &kgo.Record{Key: []byte(keyOf(i)), Value: []byte(fmt.Sprintf("%s:%d", keyOf(i), numRecords/numKeys))})
	}
	err = pcl.ProduceSync(ctx, rs...).FirstErr()
	pcl.Close()
	if err != nil {
		check(name, fmt.Errorf("produce: %w", err))
		return
	}
	for _, r := range rs {
		perPartEnd[r.Partition] = r.Offset + 1
		produced[string(r.Value)] = rec{string(r.Key), numRecords / numKeys, r.Partition, r.Offset, r.Timestamp.UnixMilli()}
	}
	extraBefore = 20
	cl, err := newClient(kgo.ConsumerGroup(group1), kgo.ConsumeTopics(topic), kgo.FetchMaxWait(300*time.Millisecond), kgo.DisableAutoCommit())
	if err != nil {
		check(name, err)
		return
	}
	defer cl.Close()
	got, errs := pollN(cl, 20, 30*time.Second)
	// Wait a little more: anything past the 20 would be a re-delivery.
	more, _ := pollN(cl, 1, 1500*time.Millisecond)
	check(name, func() error {
		if len(errs) > 0 {
			return fmt.Errorf("fetch errors: %s", strings.Join(errs, "; "))
		}
		got = append(got, more...)
		if len(got) != 20 {
			first := ""
			if len(got) > 0 {
				first = fmt.Sprintf(" (first: %s at %d/%d)", got[0].Value, got[0].Partition, got[0].Offset)
			}
			return fmt.Errorf("got %d records, want 20%s", len(got), first)
		}
		for _, r := range got {
			if !strings.HasSuffix(string(r.Value), fmt.Sprintf(":%d", numRecords/numKeys)) {
				return fmt.Errorf("re-delivered an old record %s", r.Value)
			}
		}
		return nil
	}())
	ctx2, cancel2 := ctxT(10 * time.Second)
	defer cancel2()
	check("commit after resume (group generation 2)", cl.CommitUncommittedOffsets(ctx2))
}

// ---------------------------------------------------------------------------------------------

type member struct {
	name string
	cl   *kgo.Client
	mu   sync.Mutex
	own  map[int32]bool
	recs map[string]int
	errs []string
	done chan struct{}
}

func (m *member) owned() []int32 {
	m.mu.Lock()
	defer m.mu.Unlock()
	var ps []int32
	for p := range m.own {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return ps
}

func newMember(name string) (*member, error) {
	m := &member{name: name, own: map[int32]bool{}, recs: map[string]int{}, done: make(chan struct{})}
	drop := func(_ context.Context, _ *kgo.Client, ps map[string][]int32) {
		m.mu.Lock()
		defer m.mu.Unlock()
		for _, p := range ps[topic] {
			delete(m.own, p)
		}
	}
	cl, err := newClient(
		kgo.ConsumerGroup(group2), kgo.ConsumeTopics(topic), kgo.ClientID("strait-interop-franzgo-"+name),
		kgo.FetchMaxWait(300*time.Millisecond), kgo.HeartbeatInterval(500*time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, ps map[string][]int32) {
			m.mu.Lock()
			defer m.mu.Unlock()
			for _, p := range ps[topic] {
				m.own[p] = true
			}
		}),
		// Overriding OnPartitionsRevoked replaces franz-go's default (commit, then revoke), so commit
		// here as the default would.
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, ps map[string][]int32) {
			if err := cl.CommitUncommittedOffsets(ctx); err != nil {
				m.mu.Lock()
				m.errs = append(m.errs, "commit on revoke: "+err.Error())
				m.mu.Unlock()
			}
			drop(ctx, cl, ps)
		}),
		kgo.OnPartitionsLost(drop),
		kgo.AutoCommitCallback(func(_ *kgo.Client, req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			fmt.Printf("#   %s\n", describeCommit(name, req, resp, err))
		}),
	)
	if err != nil {
		return nil, err
	}
	m.cl = cl
	go func() {
		defer close(m.done)
		for {
			fs := cl.PollFetches(context.Background())
			if fs.IsClientClosed() {
				return
			}
			m.mu.Lock()
			fs.EachError(func(t string, p int32, err error) {
				if len(m.errs) < 5 {
					m.errs = append(m.errs, fmt.Sprintf("%s/%d: %v", t, p, err))
				}
			})
			fs.EachRecord(func(r *kgo.Record) { m.recs[string(r.Value)]++ })
			m.mu.Unlock()
		}
	}()
	return m, nil
}

// describeCommit renders an OffsetCommit exchange in one line: what was committed and what strait answered.
func describeCommit(who string, req *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) string {
	var b strings.Builder
	fmt.Fprintf(&b, "commit by %s (v%d gen %d):", who, req.Version, req.Generation)
	for _, t := range req.Topics {
		for _, p := range t.Partitions {
			fmt.Fprintf(&b, " p%d=%d(epoch %d)", p.Partition, p.Offset, p.LeaderEpoch)
		}
	}
	if err != nil {
		fmt.Fprintf(&b, " -> error %v", err)
	} else if resp != nil {
		b.WriteString(" ->")
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				fmt.Fprintf(&b, " p%d:%v", p.Partition, kerr.ErrorForCode(p.ErrorCode))
			}
		}
	}
	return b.String()
}

func (m *member) close() {
	m.cl.Close()
	<-m.done
}

func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(100 * time.Millisecond)
	}
	return cond()
}

var g2Describe kadm.DescribedGroup

func checkTwoMembers(adm *kadm.Client) {
	name := "two group members split the 4 partitions (cooperative-sticky, the franz-go default)"
	a, err := newMember("a")
	if err != nil {
		check(name, err)
		return
	}
	b, err := newMember("b")
	if err != nil {
		a.close()
		check(name, err)
		return
	}
	closedA, closedB := false, false
	defer func() {
		if !closedB {
			b.close()
		}
		if !closedA {
			a.close()
		}
	}()
	split := func() bool {
		pa, pb := a.owned(), b.owned()
		if len(pa) == 0 || len(pb) == 0 || len(pa)+len(pb) != partitions {
			return false
		}
		all := map[int32]bool{}
		for _, p := range append(pa, pb...) {
			all[p] = true
		}
		return len(all) == partitions
	}
	ok := waitFor(45*time.Second, split)
	fmt.Printf("#   a owns %v, b owns %v\n", a.owned(), b.owned())
	if !check(name, func() error {
		if !ok {
			return fmt.Errorf("no split within 45s: a owns %v, b owns %v; errors a=%v b=%v", a.owned(), b.owned(), a.errs, b.errs)
		}
		return nil
	}()) {
		return
	}
	check("two members together consume every record of the topic", func() error {
		want := len(produced)
		missing := func() []string {
			a.mu.Lock()
			b.mu.Lock()
			defer a.mu.Unlock()
			defer b.mu.Unlock()
			var miss []string
			for v := range produced {
				if a.recs[v] == 0 && b.recs[v] == 0 {
					miss = append(miss, v)
				}
			}
			return miss
		}
		waitFor(30*time.Second, func() bool { return len(missing()) == 0 })
		if miss := missing(); len(miss) > 0 {
			return fmt.Errorf("%d of %d never consumed (e.g. %s); errors a=%v b=%v", len(miss), want, miss[0], a.errs, b.errs)
		}
		a.mu.Lock()
		b.mu.Lock()
		defer a.mu.Unlock()
		defer b.mu.Unlock()
		fmt.Printf("#   a consumed %d, b consumed %d records\n", len(a.recs), len(b.recs))
		return nil
	}())
	ctx, cancel := ctxT(20 * time.Second)
	defer cancel()
	check("kadm DescribeGroups: Stable, consumer/cooperative-sticky, 2 members, assignments cover 4 partitions", func() error {
		var last string
		ok := waitFor(10*time.Second, func() bool {
			ds, err := adm.DescribeGroups(ctx, group2)
			if err != nil {
				last = err.Error()
				return false
			}
			d := ds[group2]
			g2Describe = d
			if d.Err != nil {
				last = fmt.Sprintf("%v %s", d.Err, d.ErrMessage)
				return false
			}
			var members []string
			for _, m := range d.Members {
				c, _ := m.Assigned.AsConsumer()
				var ps []int32
				if c != nil {
					for _, t := range c.Topics {
						ps = append(ps, t.Partitions...)
					}
				}
				members = append(members, fmt.Sprintf("%s(%s)=%v", m.MemberID, m.ClientID, ps))
			}
			last = fmt.Sprintf("state=%q type=%q protocol=%q members=%v", d.State, d.ProtocolType, d.Protocol, members)
			assigned := d.AssignedPartitions()
			return d.State == "Stable" && d.ProtocolType == "consumer" && d.Protocol == "cooperative-sticky" &&
				len(d.Members) == 2 && len(assigned[topic]) == partitions
		})
		fmt.Printf("#   %s\n", last)
		if !ok {
			return errors.New(last)
		}
		return nil
	}())
	check("kadm ListGroups lists both groups (g1 Empty, g2 Stable, protocol type consumer)", func() error {
		ls, err := adm.ListGroups(ctx)
		if err != nil {
			return err
		}
		l1, ok1 := ls[group1]
		l2, ok2 := ls[group2]
		if !ok1 || !ok2 {
			return fmt.Errorf("groups listed: %v", ls.Groups())
		}
		if l1.State != "Empty" || l2.State != "Stable" || l1.ProtocolType != "consumer" || l2.ProtocolType != "consumer" {
			return fmt.Errorf("g1 %+v, g2 %+v", l1, l2)
		}
		return nil
	}())
	check("kadm ListGroups with a state filter (Stable) returns g2 and not g1", func() error {
		ls, err := adm.ListGroups(ctx, "Stable")
		if err != nil {
			return err
		}
		if _, ok := ls[group2]; !ok {
			return fmt.Errorf("g2 missing: %v", ls.Groups())
		}
		if _, ok := ls[group1]; ok {
			return fmt.Errorf("g1 (Empty) listed under Stable: %v", ls.Groups())
		}
		return nil
	}())
	b.close()
	closedB = true
	check("after member b leaves, member a owns all 4 partitions", func() error {
		if !waitFor(30*time.Second, func() bool { return len(a.owned()) == partitions }) {
			return fmt.Errorf("a owns %v after 30s", a.owned())
		}
		return nil
	}())
	a.close()
	closedA = true
	check("after both leave: group Empty, autocommitted offsets = end offsets", func() error {
		ds, err := adm.DescribeGroups(ctx, group2)
		if err != nil {
			return err
		}
		if d := ds[group2]; d.State != "Empty" || len(d.Members) != 0 {
			return fmt.Errorf("state %q with %d members", d.State, len(d.Members))
		}
		os, err := adm.FetchOffsets(ctx, group2)
		if err != nil {
			return err
		}
		for p := int32(0); p < partitions; p++ {
			o, ok := os.Lookup(topic, p)
			if !ok {
				return fmt.Errorf("partition %d: no committed offset (end %d); errors a=%v b=%v", p, perPartEnd[p], a.errs, b.errs)
			}
			if o.Err != nil || o.At != perPartEnd[p] {
				return fmt.Errorf("partition %d: committed %d (err %v), end %d", p, o.At, o.Err, perPartEnd[p])
			}
		}
		return nil
	}())
}

func checkGroupsAdmin(adm *kadm.Client) {
	ctx, cancel := ctxT(20 * time.Second)
	defer cancel()
	check("kadm DeleteGroups g1, then it is gone from ListGroups and FetchOffsets is empty", func() error {
		rs, err := adm.DeleteGroups(ctx, group1)
		if err != nil {
			return err
		}
		if e := rs[group1].Err; e != nil {
			return e
		}
		ls, err := adm.ListGroups(ctx)
		if err != nil {
			return err
		}
		if _, ok := ls[group1]; ok {
			return fmt.Errorf("still listed: %v", ls.Groups())
		}
		os, err := adm.FetchOffsets(ctx, group1)
		if err != nil {
			return err
		}
		n := 0
		os.Each(func(o kadm.OffsetResponse) {
			if o.At >= 0 {
				n++
			}
		})
		if n != 0 {
			return fmt.Errorf("%d committed offsets survive deletion", n)
		}
		return nil
	}())
	check("kadm DescribeGroups of an unknown group -> Dead, no members (GROUP_ID_NOT_FOUND from v6, KIP-1043)", func() error {
		ds, err := adm.DescribeGroups(ctx, "franz-nonexistent-"+runID)
		if err != nil {
			return err
		}
		d := ds["franz-nonexistent-"+runID]
		if errors.Is(d.Err, kerr.GroupIDNotFound) {
			return nil
		}
		if d.Err != nil {
			return d.Err
		}
		if d.State != "Dead" || len(d.Members) != 0 {
			return fmt.Errorf("state %q, %d members", d.State, len(d.Members))
		}
		return nil
	}())
}

// ---------------------------------------------------------------------------------------------

// rawFetch sends one Fetch for partition 0 at offset through a client pinned to versions.
func rawFetch(versions *kversion.Versions, offset int64) (*kmsg.FetchResponse, int16, error) {
	var opts []kgo.Opt
	if versions != nil {
		opts = append(opts, kgo.MaxVersions(versions))
	}
	cl, err := newClient(opts...)
	if err != nil {
		return nil, 0, err
	}
	defer cl.Close()
	ctx, cancel := ctxT(15 * time.Second)
	defer cancel()
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = 200
	req.MinBytes = 1
	req.MaxBytes = 1 << 20
	req.SessionEpoch = -1
	t := kmsg.NewFetchRequestTopic()
	t.Topic = topic
	t.TopicID = topicID
	p := kmsg.NewFetchRequestTopicPartition()
	p.Partition = 0
	p.FetchOffset = offset
	p.PartitionMaxBytes = 1 << 20
	p.CurrentLeaderEpoch = -1
	p.LastFetchedEpoch = -1
	t.Partitions = append(t.Partitions, p)
	req.Topics = append(req.Topics, t)
	resp, err := req.RequestWith(ctx, cl.Broker(int(brokerID)))
	if err != nil {
		return nil, req.Version, err
	}
	return resp, req.Version, nil
}

func fetchPart(resp *kmsg.FetchResponse) (*kmsg.FetchResponseTopicPartition, error) {
	if resp.ErrorCode != 0 {
		return nil, fmt.Errorf("top-level error %v", kerr.ErrorForCode(resp.ErrorCode))
	}
	if len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 {
		return nil, fmt.Errorf("response shape: %d topics", len(resp.Topics))
	}
	return &resp.Topics[0].Partitions[0], nil
}

func checkRawFetchOutOfRange(adm *kadm.Client) {
	end := perPartEnd[0]
	for _, v := range []struct {
		name string
		vs   *kversion.Versions
	}{{"newest (topic IDs)", nil}, {"Kafka 2.8 (topic names)", kversion.V2_8_0()}} {
		check(fmt.Sprintf("raw Fetch %s past the end (end+1000) -> OFFSET_OUT_OF_RANGE", v.name), func() error {
			resp, ver, err := rawFetch(v.vs, end+1000)
			if err != nil {
				return fmt.Errorf("v%d: %w", ver, err)
			}
			p, err := fetchPart(resp)
			if err != nil {
				return fmt.Errorf("v%d: %w", ver, err)
			}
			if p.ErrorCode != kerr.OffsetOutOfRange.Code {
				return fmt.Errorf("v%d: partition error %v, want OFFSET_OUT_OF_RANGE (hwm %d, %d record bytes)", ver, kerr.ErrorForCode(p.ErrorCode), p.HighWatermark, len(p.RecordBatches))
			}
			return nil
		}())
		check(fmt.Sprintf("raw Fetch %s at the end -> no error, no records, high watermark = end", v.name), func() error {
			start := time.Now()
			resp, ver, err := rawFetch(v.vs, end)
			if err != nil {
				return fmt.Errorf("v%d: %w", ver, err)
			}
			p, err := fetchPart(resp)
			if err != nil {
				return fmt.Errorf("v%d: %w", ver, err)
			}
			if p.ErrorCode != 0 || p.HighWatermark != end || len(p.RecordBatches) != 0 {
				return fmt.Errorf("v%d: err %v hwm %d (want %d) %d record bytes", ver, kerr.ErrorForCode(p.ErrorCode), p.HighWatermark, end, len(p.RecordBatches))
			}
			if el := time.Since(start); el > 5*time.Second {
				return fmt.Errorf("v%d: long poll with max wait 200ms took %v", ver, el)
			}
			return nil
		}())
	}
}

func checkClientResetOnOutOfRange() {
	name := "franz-go consuming partition 0 at end+1000 resets (OFFSET_OUT_OF_RANGE -> ConsumeResetOffset start) and reads from offset 0"
	end := perPartEnd[0]
	cl, err := newClient(
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: {0: kgo.NewOffset().At(end + 1000)}}),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(300*time.Millisecond),
	)
	if err != nil {
		check(name, err)
		return
	}
	defer cl.Close()
	got, errs := pollN(cl, 1, 20*time.Second)
	check(name, func() error {
		if len(got) == 0 {
			return fmt.Errorf("no records within 20s; errors %v", errs)
		}
		if got[0].Partition != 0 || got[0].Offset != 0 {
			return fmt.Errorf("first record at %d/%d", got[0].Partition, got[0].Offset)
		}
		if logs.saw("OFFSET_OUT_OF_RANGE") == "" {
			return errors.New("franz-go never logged an OFFSET_OUT_OF_RANGE reset")
		}
		return nil
	}())
}

// ---------------------------------------------------------------------------------------------

func checkCompressionAndAutoCreate(adm *kadm.Client) {
	codecs := []struct {
		name  string
		codec kgo.CompressionCodec
	}{{"none", kgo.NoCompression()}, {"gzip", kgo.GzipCompression()}, {"snappy", kgo.SnappyCompression()}, {"lz4", kgo.Lz4Compression()}, {"zstd", kgo.ZstdCompression()}}
	t := "franz-auto-" + runID
	total := 0
	okAll := true
	for _, c := range codecs {
		name := fmt.Sprintf("produce 100 records with %s compression to an auto-created topic", c.name)
		cl, err := newClient(kgo.DefaultProduceTopic(t), kgo.AllowAutoTopicCreation(), kgo.ProducerBatchCompression(c.codec))
		if err != nil {
			okAll = check(name, err) && okAll
			continue
		}
		ctx, cancel := ctxT(30 * time.Second)
		var rs []*kgo.Record
		for i := 0; i < 100; i++ {
			rs = append(rs, &kgo.Record{Key: []byte(fmt.Sprintf("%s-%d", c.name, i)), Value: bytes.Repeat([]byte(c.name+strconv.Itoa(i)), 20)})
		}
		err = cl.ProduceSync(ctx, rs...).FirstErr()
		cancel()
		cl.Close()
		okAll = check(name, err) && okAll
		total += 100
	}
	ctx, cancel := ctxT(20 * time.Second)
	defer cancel()
	check("auto-created topic has the default 4 partitions", func() error {
		m, err := adm.Metadata(ctx, t)
		if err != nil {
			return err
		}
		if d, ok := m.Topics[t]; !ok || d.Err != nil || len(d.Partitions) != 4 {
			return fmt.Errorf("metadata %+v", d)
		}
		return nil
	}())
	name := "consume the compressed records back (all codecs, values intact)"
	if !okAll {
		skip(name, "a produce failed")
		return
	}
	cl, err := newClient(kgo.ConsumeTopics(t), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(300*time.Millisecond))
	if err != nil {
		check(name, err)
		return
	}
	defer cl.Close()
	got, errs := pollN(cl, total, 30*time.Second)
	check(name, func() error {
		if len(errs) > 0 || len(got) != total {
			return fmt.Errorf("%d of %d; errors %v", len(got), total, errs)
		}
		seen := map[string]bool{}
		for _, r := range got {
			k := string(r.Key)
			i := strings.LastIndexByte(k, '-')
			want := bytes.Repeat([]byte(k[:i]+k[i+1:]), 20)
			if !bytes.Equal(r.Value, want) || seen[k] {
				return fmt.Errorf("record %s: value %q dup=%v", k, r.Value, seen[k])
			}
			seen[k] = true
		}
		return nil
	}())
}

// ---------------------------------------------------------------------------------------------

func kinesisCall(op string, body any, out any) error {
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", kinesis+"/", bytes.NewReader(b))
	req.Header.Set("X-Amz-Target", "Kinesis_20131202."+op)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host;x-amz-date, Signature=00")
	req.Header.Set("X-Amz-Date", time.Now().UTC().Format("20060102T150405Z"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s: HTTP %d %s", op, resp.StatusCode, rb)
	}
	return json.Unmarshal(rb, out)
}

// A Kinesis PutRecord with partition key K on a Kafka-created topic lands on the partition the
// Java producer (and franz-go) picks for K, and franz-go reads it back with key K.
func checkKinesisCrossPartitioning(adm *kadm.Client) {
	if kinesis == "" {
		fmt.Println("# STRAIT_KINESIS not set: Kinesis cross-protocol check not run")
		return
	}
	t := "franz-xproto-" + runID
	ctx, cancel := ctxT(30 * time.Second)
	defer cancel()
	if r, err := adm.CreateTopic(ctx, partitions, 1, nil, t); err != nil || r.Err != nil {
		check("create topic for the Kinesis cross check", errors.Join(err, r.Err))
		return
	}
	want := map[string]int32{}
	name := "Kinesis PutRecord on a Kafka topic picks the Java/franz-go partition for each key"
	if onKinesis {
		name = "Kinesis PutRecord (forwarded to Kinesis) on a Kafka-made topic lands on the shard Kinesis routes it to"
	}
	check(name, func() error {
		for i := 0; i < 40; i++ {
			k := fmt.Sprintf("xkey-%d", i)
			var out struct{ ShardId string }
			err := kinesisCall("PutRecord", map[string]string{"StreamName": t, "PartitionKey": k, "Data": base64.StdEncoding.EncodeToString([]byte("kinesis-" + k))}, &out)
			if err != nil {
				return err
			}
			n, err := strconv.Atoi(strings.TrimPrefix(out.ShardId, "shardId-"))
			if err != nil {
				return fmt.Errorf("shard id %q", out.ShardId)
			}
			want[k] = javaPartition([]byte(k), partitions)
			if onKinesis {
				// Kinesis routes by MD5 of the key: what a Kafka reader then sees is the shard it chose.
				want[k] = int32(n)
			}
			if int32(n) != want[k] {
				return fmt.Errorf("key %s -> %s, Java picks partition %d", k, out.ShardId, want[k])
			}
		}
		return nil
	}())
	cl, err := newClient(kgo.ConsumeTopics(t), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(300*time.Millisecond))
	if err != nil {
		check("franz-go reads Kinesis-written records", err)
		return
	}
	defer cl.Close()
	got, errs := pollN(cl, len(want), 20*time.Second)
	check("franz-go reads Kinesis-written records (key = partition key, value = data, partition as routed)", func() error {
		if len(got) != len(want) {
			return fmt.Errorf("%d of %d; errors %v", len(got), len(want), errs)
		}
		for _, r := range got {
			k := string(r.Key)
			if p, ok := want[k]; !ok || p != r.Partition || string(r.Value) != "kinesis-"+k {
				return fmt.Errorf("record key %q value %q partition %d", k, r.Value, r.Partition)
			}
		}
		return nil
	}())
}
