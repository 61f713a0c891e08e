package strait.kclinterop;

import java.math.BigInteger;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.BooleanSupplier;
import java.util.stream.Collectors;

import java.time.Duration;
import java.util.Properties;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.serialization.StringDeserializer;
import software.amazon.awssdk.services.dynamodb.model.AttributeValue;
import software.amazon.awssdk.services.dynamodb.model.ScanResponse;
import software.amazon.awssdk.services.kinesis.model.Consumer;
import software.amazon.awssdk.services.kinesis.model.ListShardsResponse;
import software.amazon.awssdk.services.kinesis.model.Shard;
import software.amazon.awssdk.services.kinesis.model.StreamStatus;

import static strait.kclinterop.Checks.require;

/**
 * KCL 3.x consumer applications (enhanced fan-out) against strait, with records written through Kinesis
 * PutRecords and a Kafka producer. Scenarios: basic (exactly once, per-key order, checkpoints), restart (a new
 * worker resumes at the old one's checkpoints), reshard (SplitShard while the application runs) and handover (a
 * Kafka consumer group tied to the application's lease table takes over from it and hands back; needs strait with
 * backend.type kinesis, backend.kinesis.groups.&lt;KCL_HANDOVER_GROUP&gt;.kcl_lease_table = KCL_HANDOVER_TABLE and
 * .stream = KCL_HANDOVER_STREAM, a stream the scenario makes).
 */
public final class Main {
    private static final int KEYS = 50;
    private static final long WAIT_MS = Long.getLong("kcl.waitMs", 180_000L);

    private final Env env = new Env();
    private final Checks checks = new Checks();
    private final List<String> keys = Producer.keys(KEYS);

    public static void main(String[] args) {
        Main m = new Main();
        List<String> scenarios = args.length > 0 ? List.of(args) : List.of("basic", "restart", "reshard");
        System.out.println("# kcl-interop: retrieval=" + m.env.retrieval + ", subscription lifetime " + m.env.subscriptionLifetimeSecs + " s, kinesis " + m.env.kinesisEndpoint
            + ", kafka " + m.env.kafkaBootstrap + ", dynamodb " + m.env.dynamoEndpoint + ", run " + m.env.runTag);
        for (String s : scenarios) {
            long t0 = System.nanoTime();
            try {
                switch (s) {
                    case "basic" -> m.basic();
                    case "restart" -> m.restart();
                    case "reshard" -> m.reshard();
                    case "handover" -> m.handover();
                    default -> throw new IllegalArgumentException("unknown scenario " + s);
                }
            } catch (Throwable t) {
                m.checks.check(s + ": scenario ran to the end", () -> { throw t instanceof Exception e ? e : new RuntimeException(t); });
            }
            System.out.printf("# scenario %s took %d s%n", s, (System.nanoTime() - t0) / 1_000_000_000L);
        }
        m.env.close();
        m.checks.summary("kcl-app");
        System.exit(m.checks.failed() == 0 ? 0 : 1);
    }

    // ---------------------------------------------------------------- scenario 1: basic

    private void basic() throws Exception {
        String stream = "kcl-basic-" + env.runTag;
        String app = "kcl-basic-app-" + env.runTag;
        createStream(stream, 2);
        Collector col = new Collector();
        Worker w;
        try (Producer p = new Producer(env, stream, "basic")) {
            // 2,000 records through PutRecords and 1,000 through Kafka over 50 keys (KCL_KAFKA_PER_ROUND sets
            // the Kafka share: 4 rounds of it), alternating so each key's records switch API several times. Half
            // is written before the application starts (read from TRIM_HORIZON), half while it runs (pushed to
            // the live subscriptions).
            int kafkaRound = env.kafkaPerRound;
            for (int round = 0; round < 2; round++) {
                p.kinesis(Producer.cycle(keys, round * 500, 500), "before");
                p.kafka(Producer.cycle(keys, round * kafkaRound, kafkaRound), "before", null);
            }
            w = new Worker(env, stream, app, "basic-w1-" + env.runTag, col).start();
            int before = p.sentCount();
            boolean caughtUp = waitFor(() -> col.distinctIds() >= before, WAIT_MS);
            note("basic: %d records written before start; %d delivered (%s)", before, col.distinctIds(), caughtUp ? "all" : "timed out");
            for (int round = 2; round < 4; round++) {
                p.kinesis(Producer.cycle(keys, round * 500, 500), "live");
                p.kafka(Producer.cycle(keys, round * kafkaRound, kafkaRound), "live", null);
            }
            int live = p.sentCount();
            waitFor(() -> col.distinctIds() >= live, WAIT_MS);
            // Outlive strait's subscription lifetime, so KCL has to subscribe again from its continuation point,
            // then write more.
            int subscribesBefore = w.ops.calls("SubscribeToShard");
            boolean renewal = env.fanout() && env.subscriptionLifetimeSecs > 0 && env.subscriptionLifetimeSecs <= 30;
            if (renewal) {
                note("basic: %d delivered; waiting %d s for subscriptions to end and be renewed", col.distinctIds(), env.subscriptionLifetimeSecs + 3);
                Thread.sleep((env.subscriptionLifetimeSecs + 3) * 1000L);
                p.kinesis(Producer.cycle(keys, 0, 100), "renewed");
                p.kafka(Producer.cycle(keys, 0, 50), "renewed", null);
            }
            List<Producer.Sent> sent = p.sent();
            waitFor(() -> col.distinctIds() >= sent.size(), WAIT_MS);
            Thread.sleep(3_000);  // anything delivered twice would show up now
            List<Consumer> consumers = listConsumers(stream);
            boolean stopped = w.stop();
            List<Collector.Delivery> got = col.deliveries();
            List<Shard> shards = listShards(stream);
            Map<String, Map<String, AttributeValue>> leases = leaseTable(app);

            int want = 2_000 + 4 * kafkaRound + (renewal ? 150 : 0);
            checks.check("basic: writes acknowledged (" + sent.size() + " records, per-key sequence numbers ascending)", () -> {
                require(sent.size() == want, "expected %d acknowledged records, have %d", want, sent.size());
                require(p.problems().isEmpty(), "%s", p.problems());
            });
            checks.check("basic: KCL worker started, retrieved and shut down gracefully", () -> {
                require(!got.isEmpty(), "no record delivered; events %s; errors %s", col.events(), col.errors());
                require(stopped, "graceful shutdown did not complete");
                require(col.errors().isEmpty(), "processor errors: %s", col.errors());
            });
            retrievalCheck("basic", w, consumers, app);
            checks.check("basic: every record processed (" + sent.size() + " via PutRecords and Kafka)", () -> requireAll(sent, got));
            if (renewal) {
                checks.check("basic: subscriptions renewed after strait ended them (" + env.subscriptionLifetimeSecs + " s lifetime), later records delivered", () -> {
                    require(w.ops.calls("SubscribeToShard") > subscribesBefore, "no new SubscribeToShard after %d s: %s", env.subscriptionLifetimeSecs + 3, w.ops.summary());
                    Set<String> delivered = got.stream().map(Collector.Delivery::id).collect(Collectors.toSet());
                    long renewed = sent.stream().filter(x -> x.phase().equals("renewed")).count();
                    long missing = sent.stream().filter(x -> x.phase().equals("renewed") && !delivered.contains(x.id())).count();
                    require(missing == 0, "%d of %d records written after the renewal not processed", missing, renewed);
                });
            }
            checks.check("basic: exactly once (no record processed twice)", () -> requireNoDuplicates(got));
            checks.check("basic: per-key order across PutRecords and Kafka writes", () -> requireOrder(got));
            checks.check("basic: records arrive on the shard their partition key hashes to, with the Kafka key as partition key", () -> requireRouting(got, shards));
            checks.check("basic: lease table checkpoints = last record processed on each shard", () -> requireCheckpointsAtEnd(got, leases, w.id));
        }
    }

    // ---------------------------------------------------------------- scenario 2: restart

    private void restart() throws Exception {
        String stream = "kcl-restart-" + env.runTag;
        String app = "kcl-restart-app-" + env.runTag;
        createStream(stream, 2);
        Collector col = new Collector();
        try (Producer p = new Producer(env, stream, "restart")) {
            AtomicBoolean producing = new AtomicBoolean(true);
            AtomicReference<String> phase = new AtomicReference<>("a");
            AtomicReference<Throwable> producerError = new AtomicReference<>();
            Thread producer = new Thread(() -> {
                try {
                    // about 250 records a second, at most 120 rounds (9,000 records)
                    for (int i = 0; producing.get() && i < 120; i++) {
                        p.kinesis(Producer.cycle(keys, i * 50, 50), phase.get());
                        p.kafka(Producer.cycle(keys, i * 25, 25), phase.get(), null);
                        Thread.sleep(300);
                    }
                } catch (Throwable t) {
                    producerError.set(t);
                }
            }, "restart-producer");
            p.kinesis(Producer.cycle(keys, 0, 50), "seed");
            p.kafka(Producer.cycle(keys, 0, 25), "seed", null);
            Worker a = new Worker(env, stream, app, "restart-A-" + env.runTag, col).start();
            boolean aUp = waitFor(() -> col.countFor(a.id) > 0, WAIT_MS);
            note("restart: A is processing (%s); writing continuously", aUp);
            producer.start();
            // A stops part-way, while records are still being written.
            boolean aWorked = waitFor(() -> col.countFor(a.id) >= 600, WAIT_MS);
            note("restart: A processed %d of %d written; stopping A", col.countFor(a.id), p.sentCount());
            boolean aStopped = a.stop();
            note("restart: A stopped after %d records; %d written", col.countFor(a.id), p.sentCount());
            Map<String, String> aCheckpoints = col.lastCheckpoints(a.id);
            int aCount = col.countFor(a.id);
            Map<String, Map<String, AttributeValue>> leasesAfterA = leaseTable(app);
            phase.set("gap");
            Thread.sleep(2_000);  // written while no worker runs
            phase.set("b");
            Worker b = new Worker(env, stream, app, "restart-B-" + env.runTag, col).start();
            note("restart: B started; %d written", p.sentCount());
            Thread.sleep(4_000);
            producing.set(false);
            producer.join(60_000);
            List<Producer.Sent> sent = p.sent();
            waitFor(() -> col.distinctIds() >= sent.size(), WAIT_MS);
            Thread.sleep(3_000);
            List<Consumer> consumers = listConsumers(stream);
            boolean bStopped = b.stop();
            List<Collector.Delivery> got = col.deliveries();
            List<Collector.Delivery> gotA = got.stream().filter(d -> d.worker().equals(a.id)).toList();
            List<Collector.Delivery> gotB = got.stream().filter(d -> d.worker().equals(b.id)).toList();
            System.out.printf("# restart: %d written, A processed %d (checkpoints %s), B processed %d%n", sent.size(), aCount, aCheckpoints, gotB.size());

            checks.check("restart: writes acknowledged while workers stop and start", () -> {
                require(producerError.get() == null, "producer failed: %s", producerError.get());
                require(p.problems().isEmpty(), "%s", p.problems());
            });
            checks.check("restart: worker A processed part of the stream, checkpointed and shut down gracefully", () -> {
                require(aWorked, "A processed only %d records in %d ms", col.countFor(a.id), WAIT_MS);
                require(aStopped, "A's graceful shutdown did not complete");
                require(aCount < sent.size(), "A processed everything (%d of %d): nothing left for the restart", aCount, sent.size());
                require(aCheckpoints.size() == 2, "A checkpointed on %s, expected both shards", aCheckpoints.keySet());
            });
            checks.check("restart: lease table holds A's last checkpoints", () -> {
                for (var e : aCheckpoints.entrySet()) {
                    Map<String, AttributeValue> lease = leasesAfterA.get(e.getKey());
                    require(lease != null, "no lease for %s in %s", e.getKey(), leasesAfterA.keySet());
                    require(e.getValue().equals(str(lease.get("checkpoint"))), "%s: lease checkpoint %s, A checkpointed %s",
                        e.getKey(), str(lease.get("checkpoint")), e.getValue());
                }
            });
            retrievalCheck("restart (worker B)", b, consumers, app);
            checks.check("restart: worker B took over and shut down gracefully", () -> {
                require(!gotB.isEmpty(), "B processed nothing; events %s", col.events());
                require(bStopped, "B's graceful shutdown did not complete");
                require(col.errors().isEmpty(), "processor errors: %s", col.errors());
            });
            checks.check("restart: every record processed (" + sent.size() + ", written before, between and after the restart)", () -> requireAll(sent, got));
            checks.check("restart: B resumed after A's checkpoint (nothing at or before it re-processed)", () -> {
                for (Collector.Delivery d : gotB) {
                    String cp = aCheckpoints.get(d.shardId());
                    if (cp == null) continue;
                    require(d.seq().compareTo(new BigInteger(cp)) > 0, "B processed %s (%s seq %s) at or before A's checkpoint %s",
                        d.id(), d.shardId(), d.seq(), cp);
                }
            });
            checks.check("restart: re-processed records within the at-least-once window (A's records after its last checkpoint)", () -> {
                Set<String> idsA = gotA.stream().map(Collector.Delivery::id).collect(Collectors.toSet());
                long window = gotA.stream().filter(d -> aCheckpoints.get(d.shardId()) == null
                    || d.seq().compareTo(new BigInteger(aCheckpoints.get(d.shardId()))) > 0).count();
                long again = gotB.stream().filter(d -> idsA.contains(d.id())).count();
                System.out.printf("# restart: %d records processed by both workers (window: %d processed by A after its last checkpoint)%n", again, window);
                require(again <= window, "%d records processed again, but A processed only %d after its last checkpoints", again, window);
                requireNoDuplicates(gotA);
                requireNoDuplicates(gotB);
            });
            checks.check("restart: per-key order across the restart", () -> requireOrder(got));
        }
    }

    // ---------------------------------------------------------------- scenario 4: handover

    /**
     * A KCL application reads a stream and stops; a Kafka consumer group tied to its lease table (strait's
     * backend.kinesis.groups config) starts right after the KCL checkpoints, reads what was written since and
     * commits; a new KCL worker then starts right after the Kafka group's commits, which strait wrote into the
     * lease table as checkpoints.
     */
    private void handover() throws Exception {
        String group = System.getenv("KCL_HANDOVER_GROUP");
        String app = System.getenv("KCL_HANDOVER_TABLE");
        String stream = System.getenv("KCL_HANDOVER_STREAM");
        if (group == null || app == null || stream == null) {
            throw new IllegalStateException("KCL_HANDOVER_GROUP, KCL_HANDOVER_TABLE and KCL_HANDOVER_STREAM are not set");
        }
        createStream(stream, 2);
        Collector col = new Collector();
        try (Producer p = new Producer(env, stream, "handover")) {
            p.kinesis(Producer.cycle(keys, 0, 500), "kcl-a");
            p.kinesis(Producer.cycle(keys, 500, 500), "kcl-a");
            p.kafka(Producer.cycle(keys, 0, 500), "kcl-a", null);
            Worker a = new Worker(env, stream, app, "handover-A-" + env.runTag, col).start();
            int firstPart = p.sentCount();
            boolean aRead = waitFor(() -> col.distinctIds() >= firstPart, WAIT_MS);
            boolean aStopped = a.stop();
            Map<String, String> aCheckpoints = col.lastCheckpoints(a.id);
            note("handover: A processed %d of %d and stopped (checkpoints %s)", col.countFor(a.id), firstPart, aCheckpoints);
            // Written while no KCL worker runs: the Kafka group's share.
            p.kinesis(Producer.cycle(keys, 0, 500), "kafka-group");
            p.kinesis(Producer.cycle(keys, 500, 100), "kafka-group");
            p.kafka(Producer.cycle(keys, 0, 400), "kafka-group", null);
            List<Producer.Sent> forKafka = p.sent().stream().filter(x -> x.phase().equals("kafka-group")).toList();
            List<String> kafkaGot = new ArrayList<>();
            Properties cp = new Properties();
            cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, env.kafkaBootstrap);
            cp.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            // earliest: had strait not started the group at the KCL checkpoints, it would read A's records again
            cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
            cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
            cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
            try (KafkaConsumer<String, String> c = new KafkaConsumer<>(cp)) {
                c.subscribe(List.of(stream));
                long deadline = System.currentTimeMillis() + 90_000;
                while (kafkaGot.size() < forKafka.size() && System.currentTimeMillis() < deadline) {
                    for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) {
                        kafkaGot.add(Payload.parse(r.value()).get("id"));
                    }
                    c.commitSync(Duration.ofSeconds(30));
                }
                // Anything past the gap would show now.
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofSeconds(2))) {
                    kafkaGot.add(Payload.parse(r.value()).get("id"));
                }
                c.commitSync(Duration.ofSeconds(30));
            }
            note("handover: the Kafka group read %d of %d", kafkaGot.size(), forKafka.size());
            Map<String, Map<String, AttributeValue>> leasesAfterKafka = leaseTable(app);
            p.kinesis(Producer.cycle(keys, 0, 300), "kcl-b");
            p.kafka(Producer.cycle(keys, 0, 200), "kcl-b", null);
            List<Producer.Sent> forB = p.sent().stream().filter(x -> x.phase().equals("kcl-b")).toList();
            Worker b = new Worker(env, stream, app, "handover-B-" + env.runTag, col).start();
            waitFor(() -> col.countFor(b.id) >= forB.size(), WAIT_MS);
            Thread.sleep(3_000);  // anything re-read would show now
            boolean bStopped = b.stop();
            List<Collector.Delivery> gotB = col.deliveries().stream().filter(d -> d.worker().equals(b.id)).toList();

            checks.check("handover: KCL worker A read the first " + firstPart + " records, checkpointed both shards and stopped", () -> {
                require(aRead && aStopped, "A read %d of %d (stopped: %s)", col.countFor(a.id), firstPart, aStopped);
                require(aCheckpoints.size() == 2, "A checkpointed %s", aCheckpoints.keySet());
                require(p.problems().isEmpty(), "%s", p.problems());
            });
            checks.check("handover: the Kafka group started right after A's checkpoints: it read exactly the " + forKafka.size()
                    + " records written since, none of A's", () -> {
                Set<String> want = forKafka.stream().map(Producer.Sent::id).collect(Collectors.toSet());
                Set<String> got = new HashSet<>(kafkaGot);
                require(kafkaGot.size() == got.size(), "%d records read twice", kafkaGot.size() - got.size());
                Set<String> extra = new HashSet<>(got);
                extra.removeAll(want);
                Set<String> missing = new HashSet<>(want);
                missing.removeAll(got);
                require(extra.isEmpty() && missing.isEmpty(), "read %d not meant for it (e.g. %s), missed %d (e.g. %s)",
                    extra.size(), extra.stream().limit(3).toList(), missing.size(), missing.stream().limit(3).toList());
            });
            checks.check("handover: the Kafka group's commits are KCL checkpoints in the lease table, past A's", () -> {
                for (var e : aCheckpoints.entrySet()) {
                    Map<String, AttributeValue> lease = leasesAfterKafka.get(e.getKey());
                    require(lease != null, "no lease for %s", e.getKey());
                    BigInteger now = new BigInteger(str(lease.get("checkpoint")));
                    require(now.compareTo(new BigInteger(e.getValue())) > 0, "%s: checkpoint %s, A's was %s", e.getKey(), now, e.getValue());
                }
            });
            checks.check("handover: KCL worker B started right after the Kafka group's commits: exactly the " + forB.size()
                    + " records written since", () -> {
                Set<String> want = forB.stream().map(Producer.Sent::id).collect(Collectors.toSet());
                Set<String> got = gotB.stream().map(Collector.Delivery::id).collect(Collectors.toSet());
                require(bStopped, "B's graceful shutdown did not complete");
                require(got.equals(want), "B processed %d (%d meant for it); e.g. extra %s", got.size(), want.size(),
                    got.stream().filter(x -> !want.contains(x)).limit(3).toList());
                requireNoDuplicates(gotB);
            });
        }
    }

    // ---------------------------------------------------------------- scenario 3: reshard

    private void reshard() throws Exception {
        String stream = "kcl-reshard-" + env.runTag;
        String app = "kcl-reshard-app-" + env.runTag;
        createStream(stream, 2);
        Collector col = new Collector();
        try (Producer p = new Producer(env, stream, "reshard")) {
            Worker w = new Worker(env, stream, app, "reshard-w1-" + env.runTag, col).start();
            // PutRecords run on their own thread throughout, so some race with the split; Kafka batches are
            // written before the split (MD5 partitioner) and after it (partition from ListShards' open ranges).
            AtomicReference<String> phase = new AtomicReference<>("pre");
            AtomicBoolean producing = new AtomicBoolean(true);
            AtomicReference<Throwable> producerError = new AtomicReference<>();
            Thread putter = new Thread(() -> {
                try {
                    for (int i = 1; producing.get() && i < 200; i++) {
                        p.kinesis(Producer.cycle(keys, i * 50, 50), phase.get());
                        Thread.sleep(150);
                    }
                } catch (Throwable t) {
                    producerError.set(t);
                }
            }, "reshard-putter");
            p.kinesis(Producer.cycle(keys, 0, 50), "seed");
            p.kafka(Producer.cycle(keys, 0, 25), "seed", null);
            boolean started = waitFor(() -> col.distinctIds() > 0, WAIT_MS);
            note("reshard: worker is processing (%s); writing continuously", started);
            putter.start();
            for (int i = 1; i < 6; i++) {
                p.kafka(Producer.cycle(keys, i * 25, 25), "pre", null);
                Thread.sleep(200);
            }
            // Split shard 0 at the middle of its range while the application is reading it.
            Shard parent = listShards(stream).stream().filter(s -> s.shardId().endsWith("-000000000000")).findFirst().orElseThrow();
            BigInteger lo = new BigInteger(parent.hashKeyRange().startingHashKey());
            BigInteger hi = new BigInteger(parent.hashKeyRange().endingHashKey());
            BigInteger mid = lo.add(hi).add(BigInteger.ONE).shiftRight(1);
            int deliveredAtSplit = col.distinctIds();
            phase.set("around");
            env.admin.splitShard(b -> b.streamName(stream).shardToSplit(parent.shardId()).newStartingHashKey(mid.toString())).join();
            waitActive(stream);
            List<Shard> afterSplit = listShards(stream);
            phase.set("post");
            List<Shard> open = afterSplit.stream().filter(s -> s.sequenceNumberRange().endingSequenceNumber() == null).toList();
            Set<String> children = afterSplit.stream().filter(s -> parent.shardId().equals(s.parentShardId())).map(Shard::shardId).collect(Collectors.toSet());
            note("reshard: split %s at %s with %d of %d records delivered; open shards %s, children %s",
                parent.shardId(), mid, deliveredAtSplit, p.sentCount(), open.stream().map(Shard::shardId).toList(), children);
            for (int i = 6; i < 12; i++) {
                p.kafka(Producer.cycle(keys, i * 25, 25), "post", key -> partitionOf(key, open));
                Thread.sleep(200);
            }
            Thread.sleep(500);
            producing.set(false);
            putter.join(60_000);
            List<Producer.Sent> sent = p.sent();
            waitFor(() -> col.distinctIds() >= sent.size(), WAIT_MS);
            Thread.sleep(3_000);
            List<Consumer> consumers = listConsumers(stream);
            boolean stopped = w.stop();
            List<Collector.Delivery> got = col.deliveries();
            List<Shard> shards = listShards(stream);
            Map<String, Map<String, AttributeValue>> leases = leaseTable(app);

            checks.check("reshard: writes acknowledged before, during and after SplitShard", () -> {
                require(producerError.get() == null, "PutRecords thread failed: %s", producerError.get());
                require(p.problems().isEmpty(), "%s", p.problems());
                require(children.size() == 2, "expected 2 children of %s, ListShards says %s", parent.shardId(), children);
            });
            checks.check("reshard: worker ran through the split and shut down gracefully", () -> {
                require(started, "nothing delivered before the split");
                require(stopped, "graceful shutdown did not complete");
                require(col.errors().isEmpty(), "processor errors: %s", col.errors());
            });
            retrievalCheck("reshard", w, consumers, app);
            checks.check("reshard: every record processed (" + sent.size() + ")", () -> requireAll(sent, got));
            checks.check("reshard: exactly once", () -> requireNoDuplicates(got));
            checks.check("reshard: records written after the split processed from the child shards", () -> {
                Map<String, String> shardOfId = new HashMap<>();
                for (Collector.Delivery d : got) shardOfId.putIfAbsent(d.id(), d.shardId());
                int fromChildren = 0;
                for (Producer.Sent s : sent) {
                    if (!s.phase().equals("post")) continue;
                    String sh = shardOfId.get(s.id());
                    require(sh != null, "%s not processed", s.id());
                    require(!sh.equals(parent.shardId()), "%s (written after the split) was processed from the closed parent %s", s.id(), sh);
                    if (children.contains(sh)) fromChildren++;
                }
                require(fromChildren > 0, "no record processed from the children %s", children);
                System.out.printf("# reshard: %d post-split records processed from children %s%n", fromChildren, children);
            });
            checks.check("reshard: parent processed to its end (shardEnded, SHARD_END checkpoint), children leased", () -> {
                require(col.events().contains(w.id + " shardEnded " + parent.shardId()), "no shardEnded for %s: events %s", parent.shardId(), col.events());
                Map<String, AttributeValue> pl = leases.get(parent.shardId());
                // KCL may already have cleaned up the finished parent's lease; if it is there it must be at SHARD_END
                if (pl != null) {
                    require("SHARD_END".equals(str(pl.get("checkpoint"))), "parent lease checkpoint %s", str(pl.get("checkpoint")));
                }
                for (String c : children) require(leases.containsKey(c), "no lease for child %s in %s", c, leases.keySet());
            });
            checks.check("reshard: per-key order across parent and child shards", () -> requireOrder(got));
            checks.check("reshard: records arrive on the shard their partition key hashes to", () -> requireRouting(got, shards));
        }
    }

    // ---------------------------------------------------------------- shared checks

    private void retrievalCheck(String scenario, Worker w, List<Consumer> consumers, String app) {
        if (env.fanout()) {
            checks.check(scenario + ": enhanced fan-out used (consumer registered, SubscribeToShard, no GetRecords)", () -> {
                require(w.ops.calls("SubscribeToShard") > 0, "no SubscribeToShard call: %s", w.ops.summary());
                require(w.ops.calls("GetRecords") == 0 && w.ops.calls("GetShardIterator") == 0,
                    "polling calls made: %s", w.ops.summary());
                Consumer c = consumers.stream().filter(x -> x.consumerName().equals(app)).findFirst().orElse(null);
                require(c != null, "no consumer named %s registered: %s", app, consumers);
                require("ACTIVE".equals(c.consumerStatusAsString()), "consumer %s is %s", app, c.consumerStatusAsString());
            });
        } else {
            checks.check(scenario + ": polling retrieval used (harness check only; the suite's mode is fanout)", () ->
                require(w.ops.calls("GetRecords") > 0, "no GetRecords: %s", w.ops.summary()));
        }
    }

    private static void requireAll(List<Producer.Sent> sent, List<Collector.Delivery> got) {
        Set<String> delivered = got.stream().map(Collector.Delivery::id).collect(Collectors.toSet());
        List<String> missing = sent.stream().map(Producer.Sent::id).filter(id -> !delivered.contains(id)).toList();
        Set<String> expected = sent.stream().map(Producer.Sent::id).collect(Collectors.toSet());
        List<String> extra = delivered.stream().filter(id -> !expected.contains(id)).limit(5).toList();
        require(missing.isEmpty(), "%d of %d records never processed, e.g. %s", missing.size(), sent.size(), missing.subList(0, Math.min(5, missing.size())));
        require(extra.isEmpty(), "processed records that were never written: %s", extra);
    }

    private static void requireNoDuplicates(List<Collector.Delivery> got) {
        Map<String, Integer> n = new HashMap<>();
        for (Collector.Delivery d : got) n.merge(d.id(), 1, Integer::sum);
        List<String> dups = n.entrySet().stream().filter(e -> e.getValue() > 1).map(e -> e.getKey() + " x" + e.getValue()).toList();
        require(dups.isEmpty(), "%d records processed more than once, e.g. %s", dups.size(), dups.subList(0, Math.min(5, dups.size())));
    }

    /** Per key, the counters of first deliveries (in global delivery order) strictly increase. */
    private static void requireOrder(List<Collector.Delivery> got) {
        Set<String> seen = new HashSet<>();
        Map<String, Collector.Delivery> last = new HashMap<>();
        List<String> bad = new ArrayList<>();
        for (Collector.Delivery d : got) {
            if (!seen.add(d.id())) continue;
            Collector.Delivery prev = last.put(d.key(), d);
            if (prev != null && d.counter() <= prev.counter()) {
                bad.add(String.format("key %s: #%d (%s, %s) after #%d (%s, %s)", d.key(), d.counter(), d.id(), d.shardId(),
                    prev.counter(), prev.id(), prev.shardId()));
            }
        }
        require(bad.isEmpty(), "%d per-key order violations, e.g. %s", bad.size(), bad.subList(0, Math.min(5, bad.size())));
    }

    private static void requireRouting(List<Collector.Delivery> got, List<Shard> shards) {
        Map<String, Shard> byId = shards.stream().collect(Collectors.toMap(Shard::shardId, s -> s));
        List<String> bad = new ArrayList<>();
        for (Collector.Delivery d : got) {
            if (!d.partitionKey().equals(d.key())) {
                bad.add(d.id() + ": partition key " + d.partitionKey() + " but payload key " + d.key());
                continue;
            }
            Shard s = byId.get(d.shardId());
            BigInteger h = Md5RangePartitioner.hashKey(d.partitionKey());
            if (s == null || h.compareTo(new BigInteger(s.hashKeyRange().startingHashKey())) < 0
                || h.compareTo(new BigInteger(s.hashKeyRange().endingHashKey())) > 0) {
                bad.add(d.id() + " (" + d.source() + ", key " + d.key() + ") on " + d.shardId());
            }
        }
        require(bad.isEmpty(), "%d records on the wrong shard, e.g. %s", bad.size(), bad.subList(0, Math.min(5, bad.size())));
    }

    private static void requireCheckpointsAtEnd(List<Collector.Delivery> got, Map<String, Map<String, AttributeValue>> leases, String worker) {
        Map<String, BigInteger> maxSeq = new HashMap<>();
        for (Collector.Delivery d : got) maxSeq.merge(d.shardId(), d.seq(), BigInteger::max);
        require(!maxSeq.isEmpty(), "nothing processed");
        for (var e : maxSeq.entrySet()) {
            Map<String, AttributeValue> lease = leases.get(e.getKey());
            require(lease != null, "no lease item for %s (items: %s)", e.getKey(), leases.keySet());
            require(e.getValue().toString().equals(str(lease.get("checkpoint"))), "%s: lease checkpoint %s, last processed %s",
                e.getKey(), str(lease.get("checkpoint")), e.getValue());
            require(worker.equals(str(lease.get("leaseOwner"))) || lease.get("leaseOwner") == null,
                "%s: lease owner %s", e.getKey(), str(lease.get("leaseOwner")));
        }
    }

    // ---------------------------------------------------------------- helpers

    private static String str(AttributeValue v) {
        if (v == null) return null;
        return v.s() != null ? v.s() : v.n();
    }

    private static int partitionOf(String key, List<Shard> open) {
        BigInteger h = Md5RangePartitioner.hashKey(key);
        for (Shard s : open) {
            if (h.compareTo(new BigInteger(s.hashKeyRange().startingHashKey())) >= 0
                && h.compareTo(new BigInteger(s.hashKeyRange().endingHashKey())) <= 0) {
                return Integer.parseInt(s.shardId().substring("shardId-".length()));
            }
        }
        throw new IllegalStateException("no open shard holds the hash of " + key);
    }

    private void createStream(String stream, int shards) throws InterruptedException {
        env.admin.createStream(b -> b.streamName(stream).shardCount(shards)).join();
        waitActive(stream);
    }

    private void waitActive(String stream) throws InterruptedException {
        boolean ok = waitFor(() -> env.admin.describeStreamSummary(b -> b.streamName(stream)).join()
            .streamDescriptionSummary().streamStatus() == StreamStatus.ACTIVE, 30_000);
        if (!ok) throw new IllegalStateException(stream + " did not become ACTIVE");
    }

    private List<Shard> listShards(String stream) {
        List<Shard> out = new ArrayList<>();
        ListShardsResponse r = env.admin.listShards(b -> b.streamName(stream)).join();
        out.addAll(r.shards());
        while (r.nextToken() != null) {
            String t = r.nextToken();
            r = env.admin.listShards(b -> b.nextToken(t)).join();
            out.addAll(r.shards());
        }
        return out;
    }

    private List<Consumer> listConsumers(String stream) {
        try {
            String arn = env.admin.describeStreamSummary(b -> b.streamName(stream)).join().streamDescriptionSummary().streamARN();
            return env.admin.listStreamConsumers(b -> b.streamARN(arn)).join().consumers();
        } catch (Exception e) {
            System.out.println("# ListStreamConsumers failed: " + e);
            return List.of();
        }
    }

    /** Lease table items by leaseKey. */
    private Map<String, Map<String, AttributeValue>> leaseTable(String table) {
        Map<String, Map<String, AttributeValue>> out = new LinkedHashMap<>();
        Map<String, AttributeValue> start = null;
        do {
            final Map<String, AttributeValue> from = start;
            ScanResponse r = env.dynamo.scan(b -> b.tableName(table).consistentRead(true).exclusiveStartKey(from)).join();
            for (Map<String, AttributeValue> item : r.items()) {
                AttributeValue k = item.get("leaseKey");
                if (k != null && k.s() != null) out.put(k.s(), item);
            }
            start = r.hasLastEvaluatedKey() && !r.lastEvaluatedKey().isEmpty() ? r.lastEvaluatedKey() : null;
        } while (start != null);
        return out;
    }

    private static long t0 = System.nanoTime();

    private static void note(String fmt, Object... args) {
        System.out.printf("# [%5.1fs] %s%n", (System.nanoTime() - t0) / 1e9, String.format(fmt, args));
        System.out.flush();
    }

    private static boolean waitFor(BooleanSupplier cond, long timeoutMs) throws InterruptedException {
        long deadline = System.currentTimeMillis() + timeoutMs;
        while (System.currentTimeMillis() < deadline) {
            try {
                if (cond.getAsBoolean()) return true;
            } catch (RuntimeException e) {
                // retried until the deadline
            }
            Thread.sleep(200);
        }
        return cond.getAsBoolean();
    }
}
