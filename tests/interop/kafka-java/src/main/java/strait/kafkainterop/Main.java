package strait.kafkainterop;

import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.math.BigInteger;
import java.net.URI;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletionException;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.AlterConfigOp;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.CreateTopicsResult;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.admin.TopicListing;
import org.apache.kafka.clients.consumer.CommitFailedException;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.consumer.OffsetAndTimestamp;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicCollection;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.Uuid;
import org.apache.kafka.common.compress.Compression;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.errors.ApiException;
import org.apache.kafka.common.errors.InvalidPartitionsException;
import org.apache.kafka.common.errors.PolicyViolationException;
import org.apache.kafka.common.errors.RebalanceInProgressException;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.errors.UnknownTopicOrPartitionException;
import org.apache.kafka.common.message.InitProducerIdRequestData;
import org.apache.kafka.common.message.ProduceRequestData;
import org.apache.kafka.common.message.ProduceResponseData;
import org.apache.kafka.common.protocol.Errors;
import org.apache.kafka.common.record.TimestampType;
import org.apache.kafka.common.record.internal.MemoryRecords;
import org.apache.kafka.common.record.internal.SimpleRecord;
import org.apache.kafka.common.requests.InitProducerIdRequest;
import org.apache.kafka.common.requests.InitProducerIdResponse;
import org.apache.kafka.common.requests.ProduceRequest;
import org.apache.kafka.common.requests.ProduceResponse;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.common.utils.Utils;

import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.core.SdkBytes;
import software.amazon.awssdk.core.client.config.ClientOverrideConfiguration;
import software.amazon.awssdk.http.urlconnection.UrlConnectionHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.kinesis.KinesisClient;
import software.amazon.awssdk.services.kinesis.model.GetRecordsResponse;
import software.amazon.awssdk.services.kinesis.model.PutRecordResponse;
import software.amazon.awssdk.services.kinesis.model.PutRecordsRequestEntry;
import software.amazon.awssdk.services.kinesis.model.PutRecordsResponse;
import software.amazon.awssdk.services.kinesis.model.PutRecordsResultEntry;
import software.amazon.awssdk.services.kinesis.model.Record;
import software.amazon.awssdk.services.kinesis.model.Shard;
import software.amazon.awssdk.services.kinesis.model.ShardIteratorType;

/**
 * Real-client checks of strait's Kafka listener with Apache Kafka's Java clients (Admin, Producer, Consumer), the
 * kafka-consumer-groups tool and, for the cross-protocol part, the AWS SDK for Java v2 Kinesis client (CBOR).
 *
 * <p>Environment: STRAIT_KAFKA (bootstrap host:port, default 127.0.0.1:9092), STRAIT_ENDPOINT (Kinesis endpoint,
 * default http://127.0.0.1:4567), STRAIT_PID (optional: pid of the strait process; enables the check that pauses
 * the server with SIGSTOP to force producer retries). Prints PASS/FAIL per check, then "N passed, N failed"; the
 * exit status is non-zero if any check failed.
 */
public final class Main {
    interface Body {
        void run() throws Exception;
    }

    static final class CheckFailed extends RuntimeException {
        CheckFailed(String message) {
            super(message);
        }
    }

    static int passed;
    static int failed;
    static int skipped;
    static final List<String> failedNames = new ArrayList<>();
    static final List<String> notes = new ArrayList<>();

    static String bootstrap;
    static String endpoint;
    static Long straitPid;
    static String prefix;
    static Admin admin;
    static KinesisClient kinesis;
    /**
     * STRAIT_BACKEND=kinesis: strait stores in Kinesis (docs/compatibility.md, "Kafka on Kinesis"): records carry
     * their arrival time, not the producer's timestamp; partitions are shards (CreatePartitions refused); a
     * Kinesis PutRecord is routed by MD5 of its key.
     */
    static final boolean onKinesis = "kinesis".equals(System.getenv("STRAIT_BACKEND"));

    public static void main(String[] args) throws Exception {
        bootstrap = env("STRAIT_KAFKA", "127.0.0.1:9092");
        endpoint = env("STRAIT_ENDPOINT", "http://127.0.0.1:4567");
        String pid = System.getenv("STRAIT_PID");
        straitPid = pid == null || pid.isBlank() ? null : Long.parseLong(pid.trim());
        prefix = "kj-" + Long.toString(System.currentTimeMillis() % 2_176_782_336L, 36)
                + Integer.toString(ThreadLocalRandom.current().nextInt(36 * 36), 36);
        System.out.printf("# Kafka Java clients %s interop: bootstrap=%s kinesis=%s topics=%s-*%n",
                org.apache.kafka.common.utils.internals.AppInfoParser.getVersion(), bootstrap, endpoint, prefix);

        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(TimeUnit.MINUTES.toMillis(Long.parseLong(env("KAFKA_JAVA_TIMEOUT_MIN", "20"))));
                System.out.println("FAIL watchdog: the suite did not finish in time; thread dump follows on stderr");
                Thread.getAllStackTraces().forEach((t, st) -> {
                    System.err.println("\"" + t.getName() + "\"");
                    for (StackTraceElement e : st) {
                        System.err.println("    at " + e);
                    }
                });
                System.out.printf("%d passed, %d failed%n", passed, failed + 1);
                Runtime.getRuntime().halt(3);
            } catch (InterruptedException ignored) {
            }
        }, "watchdog");
        watchdog.setDaemon(true);
        watchdog.start();

        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        ap.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        ap.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        admin = Admin.create(ap);
        kinesis = "none".equals(endpoint) ? null : KinesisClient.builder()
                .endpointOverride(URI.create(endpoint))
                .region(Region.US_EAST_1)
                .credentialsProvider(StaticCredentialsProvider.create(
                        AwsBasicCredentials.create("AKIASTRAITKAFKAJAVA0", "strait-interop-dummy-secret-key")))
                .httpClient(UrlConnectionHttpClient.builder()
                        .connectionTimeout(Duration.ofSeconds(5)).socketTimeout(Duration.ofSeconds(30)).build())
                .overrideConfiguration(ClientOverrideConfiguration.builder()
                        .apiCallTimeout(Duration.ofSeconds(60)).build())
                .build();
        try {
            adminChecks();
            producerChecks();
            idempotenceChecks();
            groupChecks();
            offsetChecks();
            consumerGroupsToolChecks();
            crossProtocolChecks();
            if (Boolean.parseBoolean(env("KAFKA_TRANSACTIONS", "false"))) {
                transactionChecks();
            } else {
                skip("transactions", "KAFKA_TRANSACTIONS not set (strait's embedded backend has no transactions)");
            }
        } finally {
            admin.close(Duration.ofSeconds(5));
            if (kinesis != null) {
                kinesis.close();
            }
        }
        for (String n : notes) {
            System.out.println("# note: " + n);
        }
        if (!failedNames.isEmpty()) {
            System.out.println("# failed: " + String.join("; ", failedNames));
        }
        System.out.printf("%d passed, %d failed%s%n", passed, failed, skipped > 0 ? " (" + skipped + " skipped)" : "");
        System.out.flush();
        Runtime.getRuntime().halt(failed == 0 ? 0 : 1);
    }

    // ------------------------------------------------------------------------------------------------ harness

    static void check(String name, Body body) {
        long t0 = System.nanoTime();
        try {
            body.run();
            passed++;
            System.out.printf("PASS %s (%d ms)%n", name, (System.nanoTime() - t0) / 1_000_000);
        } catch (Throwable t) {
            failed++;
            failedNames.add(name);
            System.out.printf("FAIL %s (%d ms): %s%n", name, (System.nanoTime() - t0) / 1_000_000, describe(t));
            if (!(t instanceof CheckFailed) && Boolean.parseBoolean(env("KAFKA_JAVA_STACKS", "false"))) {
                t.printStackTrace(System.out);
            }
        }
        System.out.flush();
    }

    /** A check that needs strait's Kinesis API; skipped when STRAIT_ENDPOINT is "none" (the Kafka backend). */
    static void kinesisCheck(String name, Body body) {
        if (kinesis == null) {
            skip(name, "no Kinesis endpoint (STRAIT_ENDPOINT=none)");
        } else {
            check(name, body);
        }
    }

    /** A check of what Kinesis cannot do, skipped with the reason when strait stores in Kinesis. */
    static void notOnKinesis(String name, String why, Body body) {
        if (onKinesis) {
            skip(name, "on Kinesis: " + why);
        } else {
            check(name, body);
        }
    }

    /** A Kinesis arrival time: at or after the producer's timestamp, within a minute. */
    static boolean arrivedAfter(long arrival, long produced) {
        return arrival >= produced && arrival - produced < 60_000;
    }

    static void skip(String name, String why) {
        skipped++;
        System.out.printf("SKIP %s: %s%n", name, why);
    }

    static void info(String fmt, Object... args) {
        System.out.printf("  # " + fmt + "%n", args);
    }

    static String describe(Throwable t) {
        Throwable cur = unwrap(t);
        StringBuilder sb = new StringBuilder();
        int depth = 0;
        while (cur != null && depth < 4) {
            if (depth > 0) {
                sb.append(" <- caused by ");
            }
            sb.append(cur instanceof CheckFailed ? "" : cur.getClass().getName() + ": ").append(cur.getMessage());
            cur = cur.getCause() == cur ? null : cur.getCause();
            depth++;
        }
        return sb.toString();
    }

    static Throwable unwrap(Throwable t) {
        while ((t instanceof ExecutionException || t instanceof CompletionException) && t.getCause() != null) {
            t = t.getCause();
        }
        return t;
    }

    static void require(boolean cond, String fmt, Object... args) {
        if (!cond) {
            throw new CheckFailed(String.format(fmt, args));
        }
    }

    static <T extends Throwable> T expectThrows(Class<T> type, Body body) throws Exception {
        try {
            body.run();
        } catch (Throwable t) {
            Throwable u = unwrap(t);
            if (type.isInstance(u)) {
                return type.cast(u);
            }
            throw new CheckFailed("expected " + type.getSimpleName() + " but got " + describe(t));
        }
        throw new CheckFailed("expected " + type.getSimpleName() + " but the call succeeded");
    }

    static boolean waitFor(long timeoutMs, BooleanSupplier cond) throws InterruptedException {
        long deadline = System.currentTimeMillis() + timeoutMs;
        while (System.currentTimeMillis() < deadline) {
            if (cond.getAsBoolean()) {
                return true;
            }
            Thread.sleep(50);
        }
        return cond.getAsBoolean();
    }

    /**
     * The port strait advertises for broker {@code id}: its one port on the embedded backend; with
     * KAFKA_PORT_PER_BROKER=true (the Kafka backend's pass-through), bootstrap port + 1 + id.
     */
    static int nodePort(int bootstrapPort, int id) {
        return Boolean.parseBoolean(env("KAFKA_PORT_PER_BROKER", "false")) ? bootstrapPort + 1 + id : bootstrapPort;
    }

    static String env(String name, String def) {
        String v = System.getenv(name);
        return v == null || v.isBlank() ? def : v.trim();
    }

    // ------------------------------------------------------------------------------------------------ helpers

    static Properties producerProps(Object... kv) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        for (int i = 0; i < kv.length; i += 2) {
            p.put(kv[i], String.valueOf(kv[i + 1]));
        }
        return p;
    }

    static Properties consumerProps(String group, Object... kv) {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        if (group != null) {
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, "classic");
        }
        for (int i = 0; i < kv.length; i += 2) {
            p.put(kv[i], String.valueOf(kv[i + 1]));
        }
        return p;
    }

    static void createTopic(String name, int partitions) throws Exception {
        admin.createTopics(List.of(new NewTopic(name, partitions, (short) 1))).all().get(30, TimeUnit.SECONDS);
    }

    static int murmurPartition(String key, int partitions) {
        return Utils.toPositive(Utils.murmur2(key.getBytes(StandardCharsets.UTF_8))) % partitions;
    }

    static String shardId(int partition) {
        return String.format("shardId-%012d", partition);
    }

    /** Sends every record, waits for all acknowledgements (in send order). */
    static List<RecordMetadata> sendAll(KafkaProducer<String, String> producer, List<ProducerRecord<String, String>> records)
            throws Exception {
        List<Future<RecordMetadata>> futures = new ArrayList<>(records.size());
        for (ProducerRecord<String, String> r : records) {
            futures.add(producer.send(r));
        }
        producer.flush();
        List<RecordMetadata> out = new ArrayList<>(records.size());
        for (Future<RecordMetadata> f : futures) {
            out.add(f.get(60, TimeUnit.SECONDS));
        }
        return out;
    }

    /** Reads every record of the given partitions from their beginning to the end offsets seen at the start. */
    static List<ConsumerRecord<String, String>> readAll(String topic, int partitions, long timeoutMs) throws Exception {
        List<TopicPartition> tps = new ArrayList<>();
        for (int i = 0; i < partitions; i++) {
            tps.add(new TopicPartition(topic, i));
        }
        return readRange(tps, null, timeoutMs);
    }

    /** Reads from {@code from} (null: beginning) until the end offsets taken at the start. */
    static List<ConsumerRecord<String, String>> readRange(List<TopicPartition> tps, Map<TopicPartition, Long> from, long timeoutMs)
            throws Exception {
        List<ConsumerRecord<String, String>> out = new ArrayList<>();
        try (KafkaConsumer<String, String> c = new KafkaConsumer<>(consumerProps(null, ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 2000))) {
            c.assign(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps, Duration.ofSeconds(15));
            if (from == null) {
                c.seekToBeginning(tps);
            } else {
                from.forEach(c::seek);
            }
            long deadline = System.currentTimeMillis() + timeoutMs;
            while (true) {
                boolean done = true;
                for (TopicPartition tp : tps) {
                    if (c.position(tp, Duration.ofSeconds(15)) < end.get(tp)) {
                        done = false;
                    }
                }
                if (done) {
                    break;
                }
                if (System.currentTimeMillis() > deadline) {
                    Map<TopicPartition, Long> pos = new TreeMap<>(tpOrder());
                    for (TopicPartition tp : tps) {
                        pos.put(tp, c.position(tp));
                    }
                    throw new CheckFailed("timed out reading back: positions " + pos + ", end offsets " + end
                            + ", records read " + out.size());
                }
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                    if (r.offset() < end.get(new TopicPartition(r.topic(), r.partition()))) {
                        out.add(r);
                    }
                }
            }
        }
        return out;
    }

    static java.util.Comparator<TopicPartition> tpOrder() {
        return java.util.Comparator.comparing(TopicPartition::topic).thenComparingInt(TopicPartition::partition);
    }

    static double metric(Map<MetricName, ? extends Metric> metrics, String group, String name) {
        for (Map.Entry<MetricName, ? extends Metric> e : metrics.entrySet()) {
            if (e.getKey().group().equals(group) && e.getKey().name().equals(name)) {
                Object v = e.getValue().metricValue();
                return v instanceof Number ? ((Number) v).doubleValue() : Double.NaN;
            }
        }
        return Double.NaN;
    }

    static List<Record> readShard(String stream, String shardId) {
        List<Record> out = new ArrayList<>();
        String it = kinesis.getShardIterator(b -> b.streamName(stream).shardId(shardId)
                .shardIteratorType(ShardIteratorType.TRIM_HORIZON)).shardIterator();
        for (int i = 0; i < 50 && it != null; i++) {
            final String cur = it;
            GetRecordsResponse r = kinesis.getRecords(b -> b.shardIterator(cur).limit(10000));
            out.addAll(r.records());
            it = r.nextShardIterator();
            if (r.records().isEmpty() && (r.millisBehindLatest() == null || r.millisBehindLatest() == 0)) {
                break;
            }
        }
        return out;
    }

    static String utf8(SdkBytes b) {
        return b.asUtf8String();
    }

    // ------------------------------------------------------------------------------------------------ admin

    static void adminChecks() throws Exception {
        String topic = prefix + "-admin";
        Uuid[] id = new Uuid[1];
        int kafkaPort = Integer.parseInt(bootstrap.substring(bootstrap.lastIndexOf(':') + 1));

        check("admin.createTopics (3 partitions)", () -> {
            CreateTopicsResult r = admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1)));
            r.all().get(30, TimeUnit.SECONDS);
            require(r.numPartitions(topic).get() == 3, "numPartitions=%s", r.numPartitions(topic).get());
            id[0] = r.topicId(topic).get();
            require(id[0] != null && !Uuid.ZERO_UUID.equals(id[0]), "topicId=%s", id[0]);
        });
        check("admin.createTopics on an existing topic -> TopicExistsException", () -> {
            TopicExistsException e = expectThrows(TopicExistsException.class, () ->
                    admin.createTopics(List.of(new NewTopic(topic, 3, (short) 1))).all().get(30, TimeUnit.SECONDS));
            require(e.getMessage() != null && !e.getMessage().isEmpty(), "empty message");
        });
        check("admin.listTopics", () -> {
            Map<String, TopicListing> m = admin.listTopics().namesToListings().get(30, TimeUnit.SECONDS);
            require(m.containsKey(topic), "%s not in %s", topic, m.keySet());
            require(m.get(topic).topicId().equals(id[0]), "listing topicId %s, created %s", m.get(topic).topicId(), id[0]);
            require(!m.get(topic).isInternal(), "internal");
        });
        check("admin.describeTopics by name (partitions, leader, topic id)", () -> {
            TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS).get(topic);
            require(d != null, "no description");
            require(d.topicId().equals(id[0]), "topicId %s, created %s", d.topicId(), id[0]);
            List<TopicPartitionInfo> ps = d.partitions();
            require(ps.size() == 3, "partitions %s", ps);
            for (int i = 0; i < 3; i++) {
                TopicPartitionInfo p = ps.get(i);
                require(p.partition() == i, "partition %d is %s", i, p);
                require(p.leader() != null && p.leader().id() >= 0 && p.leader().port() == nodePort(kafkaPort, p.leader().id()),
                        "partition %d leader %s", i, p.leader());
                require(p.replicas().contains(p.leader()) && p.isr().contains(p.leader()), "replicas/isr of %s", p);
            }
        });
        check("admin.describeTopics by topic id", () -> {
            Map<Uuid, TopicDescription> m = admin.describeTopics(TopicCollection.ofTopicIds(List.of(id[0])))
                    .allTopicIds().get(30, TimeUnit.SECONDS);
            require(m.containsKey(id[0]) && m.get(id[0]).name().equals(topic), "got %s", m);
            require(m.get(id[0]).partitions().size() == 3, "partitions %s", m.get(id[0]).partitions());
        });
        check("admin.describeCluster", () -> {
            DescribeClusterResult r = admin.describeCluster();
            String clusterId = r.clusterId().get(30, TimeUnit.SECONDS);
            Collection<Node> nodes = r.nodes().get();
            Node controller = r.controller().get();
            require(clusterId != null && !clusterId.isEmpty(), "clusterId %s", clusterId);
            require(!nodes.isEmpty(), "no nodes");
            for (Node n : nodes) {
                require(n.id() >= 0 && n.port() == nodePort(kafkaPort, n.id()), "node %s (bootstrap %s)", n, bootstrap);
            }
            require(controller != null && controller.id() >= 0, "controller %s", controller);
            info("clusterId=%s nodes=%s controller=%s", clusterId, nodes, controller);
        });
        ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, topic);
        check("admin.describeConfigs retention.ms", () -> {
            Config c = admin.describeConfigs(List.of(res)).all().get(30, TimeUnit.SECONDS).get(res);
            ConfigEntry e = c.get("retention.ms");
            require(e != null, "no retention.ms in %s", c.entries());
            require(Long.parseLong(e.value()) > 0, "retention.ms=%s", e.value());
            info("retention.ms=%s source=%s; %d entries", e.value(), e.source(), c.entries().size());
        });
        check("admin.incrementalAlterConfigs retention.ms=172800000 (SET), describeConfigs reads it back", () -> {
            admin.incrementalAlterConfigs(Map.of(res, List.of(new AlterConfigOp(
                    new ConfigEntry("retention.ms", "172800000"), AlterConfigOp.OpType.SET)))).all().get(30, TimeUnit.SECONDS);
            ConfigEntry e = admin.describeConfigs(List.of(res)).all().get(30, TimeUnit.SECONDS).get(res).get("retention.ms");
            require(e != null && "172800000".equals(e.value()), "retention.ms now %s", e);
        });
        kinesisCheck("kinesis DescribeStreamSummary sees the Kafka retention change (48 h)", () -> {
            Integer h = kinesis.describeStreamSummary(b -> b.streamName(topic)).streamDescriptionSummary().retentionPeriodHours();
            require(h != null && h == 48, "RetentionPeriodHours=%s", h);
        });
        if (onKinesis) {
            check("admin.createPartitions 3 -> 5 on Kinesis -> InvalidPartitionsException naming UpdateShardCount", () -> {
                InvalidPartitionsException e = expectThrows(InvalidPartitionsException.class, () ->
                        admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(5))).all().get(30, TimeUnit.SECONDS));
                require(e.getMessage() != null && e.getMessage().contains("UpdateShardCount"), "message: %s", e.getMessage());
            });
        }
        notOnKinesis("admin.createPartitions 3 -> 5 on a Kafka-created topic", "shards are added with UpdateShardCount", () -> {
            admin.createPartitions(Map.of(topic, NewPartitions.increaseTo(5))).all().get(30, TimeUnit.SECONDS);
            int[] n = new int[1];
            boolean ok = waitFor(10000, () -> {
                try {
                    n[0] = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions().size();
                } catch (Exception e) {
                    n[0] = -1;
                }
                return n[0] == 5;
            });
            require(ok, "describeTopics shows %d partitions", n[0]);
        });
        notOnKinesis("kinesis ListShards on that topic lists 5 shards", "CreatePartitions is refused", () -> {
            // On the Kafka backend the cluster adds the partitions and strait follows within seconds.
            List<List<Shard>> seen = new ArrayList<>(List.of(List.of()));
            boolean ok = waitFor(10000, () -> {
                seen.set(0, kinesis.listShards(b -> b.streamName(topic)).shards());
                return seen.get(0).size() == 5;
            });
            require(ok, "shards %s", seen.get(0).stream().map(Shard::shardId).collect(Collectors.toList()));
        });
        String md5Stream = prefix + "-kin2";
        // On the Kafka backend strait answers this itself rather than forwarding it.
        kinesisCheck("admin.createPartitions on a Kinesis-created stream -> PolicyViolationException"
                + (onKinesis ? " (on Kinesis: InvalidPartitionsException naming UpdateShardCount)" : ""), () -> {
            kinesis.createStream(b -> b.streamName(md5Stream).shardCount(2));
            kinesis.waiter().waitUntilStreamExists(b -> b.streamName(md5Stream));
            // On Kinesis every topic is refused alike, naming UpdateShardCount.
            Class<? extends ApiException> refusal = onKinesis ? InvalidPartitionsException.class : PolicyViolationException.class;
            ApiException e = expectThrows(refusal, () ->
                    admin.createPartitions(Map.of(md5Stream, NewPartitions.increaseTo(3))).all().get(30, TimeUnit.SECONDS));
            require(!onKinesis || e.getMessage().contains("UpdateShardCount"), "message: %s", e.getMessage());
            require(e.getMessage() != null && !e.getMessage().isEmpty(), "empty message");
            info("message: %s", e.getMessage());
            int n = admin.describeTopics(List.of(md5Stream)).allTopicNames().get().get(md5Stream).partitions().size();
            require(n == 2, "stream now has %d partitions", n);
        });
        check("admin.deleteTopics; then listTopics omits it and describeTopics -> UnknownTopicOrPartitionException", () -> {
            admin.deleteTopics(List.of(topic)).all().get(30, TimeUnit.SECONDS);
            boolean gone = waitFor(10000, () -> {
                try {
                    return !admin.listTopics().names().get().contains(topic);
                } catch (Exception e) {
                    return false;
                }
            });
            require(gone, "still listed after 10 s");
            expectThrows(UnknownTopicOrPartitionException.class, () ->
                    admin.describeTopics(List.of(topic)).allTopicNames().get(30, TimeUnit.SECONDS));
        });
    }

    // ------------------------------------------------------------------------------------------------ producer

    static void producerChecks() throws Exception {
        String topic = prefix + "-produce";
        int n = 10_000;
        List<ProducerRecord<String, String>> records = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            records.add(new ProducerRecord<>(topic, "key-" + (i % 1000), "value-" + i));
        }
        List<List<RecordMetadata>> acked = new ArrayList<>();
        check("producer (defaults: idempotent, acks=all): 10000 keyed records acknowledged, offsets increase per partition", () -> {
            createTopic(topic, 4);
            try (KafkaProducer<String, String> p = new KafkaProducer<>(producerProps())) {
                List<RecordMetadata> md = sendAll(p, records);
                acked.add(md);
                Map<Integer, Long> last = new HashMap<>();
                for (int i = 0; i < n; i++) {
                    RecordMetadata m = md.get(i);
                    int want = murmurPartition(records.get(i).key(), 4);
                    require(m.partition() == want, "record %d (key %s) went to partition %d, murmur2 says %d",
                            i, records.get(i).key(), m.partition(), want);
                    require(m.hasOffset() && m.offset() >= 0, "record %d has no offset", i);
                    Long prev = last.put(m.partition(), m.offset());
                    require(prev == null || m.offset() > prev, "partition %d: record %d got offset %d after %d",
                            m.partition(), i, m.offset(), prev);
                }
                double idem = metric(p.metrics(), "producer-metrics", "record-error-total");
                require(idem == 0.0 || Double.isNaN(idem), "record-error-total=%s", idem);
                info("last offsets per partition: %s", new TreeMap<>(last));
            }
        });
        check("consumer reads the 10000 records back: same offsets, keys, values, per-key order", () -> {
            require(!acked.isEmpty(), "nothing was produced");
            List<RecordMetadata> md = acked.get(0);
            List<ConsumerRecord<String, String>> got = readAll(topic, 4, 60000);
            require(got.size() == n, "read %d records, want %d", got.size(), n);
            Map<String, ConsumerRecord<String, String>> byPos = new HashMap<>();
            for (ConsumerRecord<String, String> r : got) {
                byPos.put(r.partition() + "@" + r.offset(), r);
            }
            for (int i = 0; i < n; i++) {
                ConsumerRecord<String, String> r = byPos.get(md.get(i).partition() + "@" + md.get(i).offset());
                require(r != null, "record %d (p%d@%d) not read", i, md.get(i).partition(), md.get(i).offset());
                require(records.get(i).key().equals(r.key()) && records.get(i).value().equals(r.value()),
                        "p%d@%d: read %s=%s, produced %s=%s", r.partition(), r.offset(), r.key(), r.value(),
                        records.get(i).key(), records.get(i).value());
                require(r.timestampType() == TimestampType.CREATE_TIME && (onKinesis
                        ? arrivedAfter(r.timestamp(), md.get(i).timestamp()) : r.timestamp() == md.get(i).timestamp()),
                        "p%d@%d timestamp %s %d, ack said %d", r.partition(), r.offset(), r.timestampType(),
                        r.timestamp(), md.get(i).timestamp());
            }
        });

        String ctopic = prefix + "-compressed";
        for (String codec : List.of("gzip", "snappy", "lz4", "zstd")) {
            check("producer compression.type=" + codec + ": 500 records acknowledged and read back", () -> {
                if (codec.equals("gzip")) {
                    createTopic(ctopic, 2);
                }
                List<ProducerRecord<String, String>> recs = new ArrayList<>();
                for (int i = 0; i < 500; i++) {
                    recs.add(new ProducerRecord<>(ctopic, codec + "-k" + (i % 7),
                            codec + "-" + i + "-" + "the quick brown fox jumps over the lazy dog ".repeat(8)));
                }
                List<RecordMetadata> md;
                double ratio;
                try (KafkaProducer<String, String> p = new KafkaProducer<>(producerProps(
                        ProducerConfig.COMPRESSION_TYPE_CONFIG, codec, ProducerConfig.LINGER_MS_CONFIG, 20,
                        ProducerConfig.BATCH_SIZE_CONFIG, 65536))) {
                    md = sendAll(p, recs);
                    ratio = metric(p.metrics(), "producer-metrics", "compression-rate-avg");
                }
                require(ratio < 0.9, "compression-rate-avg=%s: the producer did not compress", ratio);
                Map<TopicPartition, Long> from = new HashMap<>();
                for (RecordMetadata m : md) {
                    from.merge(new TopicPartition(ctopic, m.partition()), m.offset(), Math::min);
                }
                List<ConsumerRecord<String, String>> got = readRange(new ArrayList<>(from.keySet()), from, 30000);
                Map<String, ConsumerRecord<String, String>> byPos = new HashMap<>();
                for (ConsumerRecord<String, String> r : got) {
                    byPos.put(r.partition() + "@" + r.offset(), r);
                }
                for (int i = 0; i < recs.size(); i++) {
                    ConsumerRecord<String, String> r = byPos.get(md.get(i).partition() + "@" + md.get(i).offset());
                    require(r != null, "record %d (p%d@%d) not read back", i, md.get(i).partition(), md.get(i).offset());
                    require(recs.get(i).value().equals(r.value()) && recs.get(i).key().equals(r.key()),
                            "record %d read back as %s=%s", i, r.key(), r.value());
                }
                info("compression-rate-avg=%.3f", ratio);
            });
        }
    }

    // ------------------------------------------------------------------------------------------------ idempotence

    static void idempotenceChecks() throws Exception {
        String name = "idempotent producer: requests timed out while strait is paused (SIGSTOP) are retried; "
                + "log holds each record exactly once, in order";
        if (straitPid == null) {
            skip(name, "STRAIT_PID not set (run.sh sets it when it starts strait itself)");
        } else {
            check(name, () -> pausedServerRetries());
        }
        check("raw Produce: an identical idempotent batch sent twice is stored once (same base offset); "
                + "a sequence gap -> OUT_OF_ORDER_SEQUENCE_NUMBER", Main::rawDuplicateBatch);
    }

    static void signal(String sig) throws Exception {
        Process p = new ProcessBuilder("kill", "-" + sig, String.valueOf(straitPid)).inheritIO().start();
        require(p.waitFor(10, TimeUnit.SECONDS) && p.exitValue() == 0, "kill -%s %d failed", sig, straitPid);
    }

    static void pausedServerRetries() throws Exception {
        String topic = prefix + "-idem";
        createTopic(topic, 2);
        int n = 4000;
        List<Future<RecordMetadata>> futures = new ArrayList<>();
        double retries;
        try (KafkaProducer<String, String> p = new KafkaProducer<>(producerProps(
                ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true,
                ProducerConfig.ACKS_CONFIG, "all",
                ProducerConfig.MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION, 5,
                ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 1000,
                ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 60000,
                ProducerConfig.LINGER_MS_CONFIG, 5,
                ProducerConfig.BATCH_SIZE_CONFIG, 4096,
                ProducerConfig.RETRY_BACKOFF_MS_CONFIG, 100,
                ProducerConfig.RETRY_BACKOFF_MAX_MS_CONFIG, 500,
                ProducerConfig.RECONNECT_BACKOFF_MS_CONFIG, 50,
                ProducerConfig.RECONNECT_BACKOFF_MAX_MS_CONFIG, 500,
                ProducerConfig.SOCKET_CONNECTION_SETUP_TIMEOUT_MS_CONFIG, 1000,
                ProducerConfig.SOCKET_CONNECTION_SETUP_TIMEOUT_MAX_MS_CONFIG, 2000))) {
            for (int i = 0; i < 1000; i++) {
                futures.add(p.send(new ProducerRecord<>(topic, "ik-" + (i % 20), "iv-" + i)));
            }
            p.flush();
            signal("STOP");
            try {
                for (int i = 1000; i < 3000; i++) {
                    futures.add(p.send(new ProducerRecord<>(topic, "ik-" + (i % 20), "iv-" + i)));
                }
                Thread.sleep(3500);
            } finally {
                signal("CONT");
            }
            for (int i = 3000; i < n; i++) {
                futures.add(p.send(new ProducerRecord<>(topic, "ik-" + (i % 20), "iv-" + i)));
            }
            p.flush();
            List<String> errors = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                try {
                    futures.get(i).get(60, TimeUnit.SECONDS);
                } catch (Exception e) {
                    if (errors.size() < 3) {
                        errors.add("record " + i + ": " + describe(e));
                    } else {
                        errors.add("...");
                    }
                }
            }
            retries = metric(p.metrics(), "producer-metrics", "record-retry-total");
            require(errors.isEmpty(), "%d sends failed: %s", errors.size(), errors.subList(0, Math.min(4, errors.size())));
        }
        info("record-retry-total=%.0f", retries);
        require(retries > 0, "the pause did not cause any retry (record-retry-total=%s): the check proved nothing", retries);
        List<ConsumerRecord<String, String>> got = readAll(topic, 2, 60000);
        Map<String, Integer> count = new HashMap<>();
        Map<Integer, Integer> lastIndex = new HashMap<>();
        List<String> disorder = new ArrayList<>();
        got.sort(java.util.Comparator.comparingInt((ConsumerRecord<String, String> r) -> r.partition())
                .thenComparingLong(ConsumerRecord::offset));
        for (ConsumerRecord<String, String> r : got) {
            count.merge(r.value(), 1, Integer::sum);
            int idx = Integer.parseInt(r.value().substring(3));
            Integer prev = lastIndex.put(r.partition(), idx);
            if (prev != null && idx <= prev && disorder.size() < 5) {
                disorder.add("p" + r.partition() + "@" + r.offset() + " holds " + r.value() + " after iv-" + prev);
            }
        }
        List<String> dups = count.entrySet().stream().filter(e -> e.getValue() > 1).map(e -> e.getKey() + "x" + e.getValue())
                .sorted().collect(Collectors.toList());
        List<String> missing = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            if (!count.containsKey("iv-" + i)) {
                missing.add("iv-" + i);
            }
        }
        require(dups.isEmpty() && missing.isEmpty() && disorder.isEmpty(),
                "log has %d records for %d sent: %d duplicated %s, %d missing %s, out of order %s", got.size(), n,
                dups.size(), dups.subList(0, Math.min(10, dups.size())), missing.size(),
                missing.subList(0, Math.min(10, missing.size())), disorder);
    }

    static void rawDuplicateBatch() throws Exception {
        String topic = prefix + "-rawdup";
        createTopic(topic, 1);
        long ts = System.currentTimeMillis();
        try (RawKafka raw = new RawKafka(bootstrap, 15000)) {
            InitProducerIdResponse init = raw.send(new InitProducerIdRequest.Builder(new InitProducerIdRequestData()
                    .setTransactionalId(null).setTransactionTimeoutMs(Integer.MAX_VALUE)
                    .setProducerId(-1L).setProducerEpoch((short) -1)), (short) 4);
            require(init.error() == Errors.NONE, "InitProducerId: %s", init.error());
            long pid = init.data().producerId();
            short epoch = init.data().producerEpoch();
            long[] base = new long[4];
            short[] err = new short[4];
            int[][] batches = {{0, 3}, {0, 3}, {3, 2}, {10, 1}}; // (base sequence, record count)
            for (int b = 0; b < batches.length; b++) {
                int seq = batches[b][0];
                SimpleRecord[] recs = new SimpleRecord[batches[b][1]];
                for (int j = 0; j < recs.length; j++) {
                    recs[j] = new SimpleRecord(ts + seq + j, ("rk" + (seq + j)).getBytes(StandardCharsets.UTF_8),
                            ("rv" + (seq + j)).getBytes(StandardCharsets.UTF_8));
                }
                MemoryRecords mr = MemoryRecords.withIdempotentRecords(Compression.NONE, pid, epoch, seq, recs);
                ProduceRequestData.TopicProduceDataCollection topics = new ProduceRequestData.TopicProduceDataCollection();
                topics.add(new ProduceRequestData.TopicProduceData().setName(topic).setPartitionData(List.of(
                        new ProduceRequestData.PartitionProduceData().setIndex(0).setRecords(mr))));
                ProduceResponse resp = raw.send(ProduceRequest.builder(new ProduceRequestData()
                        .setAcks((short) -1).setTimeoutMs(10000).setTopicData(topics)), (short) 9);
                ProduceResponseData.PartitionProduceResponse pr =
                        resp.data().responses().iterator().next().partitionResponses().get(0);
                err[b] = pr.errorCode();
                base[b] = pr.baseOffset();
            }
            info("responses: first (%s, %d), duplicate (%s, %d), next (%s, %d), gap (%s)",
                    Errors.forCode(err[0]), base[0], Errors.forCode(err[1]), base[1], Errors.forCode(err[2]), base[2],
                    Errors.forCode(err[3]));
            require(err[0] == 0, "first batch: %s", Errors.forCode(err[0]));
            require((err[1] == 0 && base[1] == base[0]) || err[1] == Errors.DUPLICATE_SEQUENCE_NUMBER.code(),
                    "duplicate batch: %s base offset %d (first batch had %d)", Errors.forCode(err[1]), base[1], base[0]);
            require(err[2] == 0 && base[2] > base[0], "batch seq 3: %s base offset %d", Errors.forCode(err[2]), base[2]);
            require(err[3] == Errors.OUT_OF_ORDER_SEQUENCE_NUMBER.code(), "batch seq 10 after 4: %s",
                    Errors.forCode(err[3]));
        }
        List<ConsumerRecord<String, String>> got = readAll(topic, 1, 30000);
        List<String> values = got.stream().map(ConsumerRecord::value).collect(Collectors.toList());
        require(values.equals(List.of("rv0", "rv1", "rv2", "rv3", "rv4")), "log holds %s", values);
    }

    // ------------------------------------------------------------------------------------------------ groups

    static final class Member implements Runnable {
        final String name;
        final String topic;
        final KafkaConsumer<String, String> consumer;
        final ConcurrentLinkedQueue<ConsumerRecord<String, String>> got = new ConcurrentLinkedQueue<>();
        final List<String> events = Collections.synchronizedList(new ArrayList<>());
        final Map<TopicPartition, OffsetAndMetadata> pending = new HashMap<>();
        final AtomicInteger commits = new AtomicInteger();
        final AtomicInteger commitFailures = new AtomicInteger();
        volatile Set<TopicPartition> assignment = Set.of();
        volatile boolean stop;
        volatile Throwable error;
        final Thread thread;

        Member(String name, String group, String topic) {
            this.name = name;
            this.topic = topic;
            this.consumer = new KafkaConsumer<>(consumerProps(group, ConsumerConfig.CLIENT_ID_CONFIG, name,
                    ConsumerConfig.MAX_POLL_RECORDS_CONFIG, 50,
                    ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, 10000,
                    ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, 1000));
            this.thread = new Thread(this, name);
        }

        void start() {
            thread.start();
        }

        @Override
        public void run() {
            try {
                consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                    @Override
                    public void onPartitionsRevoked(java.util.Collection<TopicPartition> parts) {
                        events.add("revoked " + parts);
                        commitPending();
                        assignment = Set.of();
                    }

                    @Override
                    public void onPartitionsAssigned(java.util.Collection<TopicPartition> parts) {
                        events.add("assigned " + parts);
                        assignment = Set.copyOf(consumer.assignment());
                    }
                });
                while (!stop) {
                    ConsumerRecords<String, String> rs = consumer.poll(Duration.ofMillis(100));
                    for (ConsumerRecord<String, String> r : rs) {
                        got.add(r);
                        pending.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                    }
                    commitPending();
                    assignment = Set.copyOf(consumer.assignment());
                }
                commitPending();
            } catch (Throwable t) {
                error = t;
            } finally {
                try {
                    consumer.close(org.apache.kafka.clients.consumer.CloseOptions.timeout(Duration.ofSeconds(10)));
                } catch (Throwable t) {
                    if (error == null) {
                        error = t;
                    }
                }
            }
        }

        void commitPending() {
            if (pending.isEmpty()) {
                return;
            }
            try {
                consumer.commitSync(new HashMap<>(pending), Duration.ofSeconds(15));
                commits.incrementAndGet();
                pending.clear();
            } catch (RebalanceInProgressException | CommitFailedException e) {
                commitFailures.incrementAndGet();
                events.add("commit failed: " + e);
            }
        }

        void stopAndJoin() throws InterruptedException {
            stop = true;
            thread.join(30000);
        }
    }

    static void groupChecks() throws Exception {
        String topic = prefix + "-group";
        String group = prefix + "-group-g";
        createTopic(topic, 4);
        Map<String, RecordMetadata> produced = new LinkedHashMap<>();
        KafkaProducer<String, String> producer = new KafkaProducer<>(producerProps());
        Body produce400 = () -> {
            int base = produced.size();
            List<ProducerRecord<String, String>> recs = new ArrayList<>();
            for (int i = base; i < base + 400; i++) {
                recs.add(new ProducerRecord<>(topic, "gk-" + (i % 50), "gv-" + i));
            }
            List<RecordMetadata> md = sendAll(producer, recs);
            for (int i = 0; i < recs.size(); i++) {
                produced.put(recs.get(i).value(), md.get(i));
            }
        };
        Member m1 = new Member(prefix + "-m1", group, topic);
        Member m2 = new Member(prefix + "-m2", group, topic);
        try {
            produce400.run();
            m1.start();
            m2.start();
            check("group (classic protocol, default assignor): two members split a 4-partition topic 2+2", () -> {
                boolean ok = waitFor(30000, () -> {
                    Set<TopicPartition> a = m1.assignment;
                    Set<TopicPartition> b = m2.assignment;
                    return a.size() == 2 && b.size() == 2 && Collections.disjoint(a, b);
                });
                require(ok, "m1=%s m2=%s; m1 events %s; m2 events %s; errors %s / %s", m1.assignment, m2.assignment,
                        m1.events, m2.events, m1.error, m2.error);
            });
            produce400.run();
            waitFor(20000, () -> m1.got.size() + m2.got.size() >= 800);
            check("group: after one member closes, the other gets all 4 partitions", () -> {
                m2.stopAndJoin();
                require(!m2.thread.isAlive(), "m2 did not close within 30 s");
                require(m2.error == null, "m2 failed: %s", m2.error == null ? "" : describe(m2.error));
                boolean ok = waitFor(30000, () -> m1.assignment.size() == 4);
                require(ok, "m1 owns %s; m1 events %s; error %s", m1.assignment, m1.events, m1.error);
            });
            produce400.run();
            check("group: every record consumed exactly once across the rebalance (commitSync after each poll)", () -> {
                int total = produced.size();
                waitFor(60000, () -> distinctValues(m1, m2) >= total);
                Thread.sleep(1500); // late duplicates would show up here
                m1.stopAndJoin();
                Map<String, Integer> count = new HashMap<>();
                List<String> misplaced = new ArrayList<>();
                for (Member m : List.of(m1, m2)) {
                    for (ConsumerRecord<String, String> r : m.got) {
                        count.merge(r.value(), 1, Integer::sum);
                        RecordMetadata md = produced.get(r.value());
                        if (md == null || md.partition() != r.partition() || md.offset() != r.offset()) {
                            misplaced.add(r.value() + "@p" + r.partition() + "/" + r.offset());
                        }
                    }
                }
                List<String> dups = count.entrySet().stream().filter(e -> e.getValue() > 1)
                        .map(e -> e.getKey() + "x" + e.getValue()).sorted().collect(Collectors.toList());
                List<String> missing = produced.keySet().stream().filter(v -> !count.containsKey(v)).collect(Collectors.toList());
                info("m1 consumed %d (%d commits, %d failed), m2 consumed %d (%d commits, %d failed)", m1.got.size(),
                        m1.commits.get(), m1.commitFailures.get(), m2.got.size(), m2.commits.get(), m2.commitFailures.get());
                require(m1.error == null, "m1 failed: %s", m1.error == null ? "" : describe(m1.error));
                require(dups.isEmpty() && missing.isEmpty() && misplaced.isEmpty(),
                        "%d duplicated %s; %d missing %s; misplaced %s; m1 events %s; m2 events %s", dups.size(),
                        dups.subList(0, Math.min(10, dups.size())), missing.size(),
                        missing.subList(0, Math.min(10, missing.size())),
                        misplaced.subList(0, Math.min(10, misplaced.size())), m1.events, m2.events);
                Map<TopicPartition, OffsetAndMetadata> committed = admin.listConsumerGroupOffsets(group)
                        .partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
                Map<TopicPartition, Long> want = new HashMap<>();
                for (RecordMetadata md : produced.values()) {
                    want.merge(new TopicPartition(topic, md.partition()), md.offset() + 1, Math::max);
                }
                Map<TopicPartition, Long> have = new HashMap<>();
                committed.forEach((tp, om) -> have.put(tp, om.offset()));
                require(have.equals(want), "committed offsets %s, want %s", have, want);
            });
        } finally {
            m1.stopAndJoin();
            m2.stopAndJoin();
            producer.close();
        }
    }

    static int distinctValues(Member... ms) {
        Set<String> s = new HashSet<>();
        for (Member m : ms) {
            for (ConsumerRecord<String, String> r : m.got) {
                s.add(r.value());
            }
        }
        return s.size();
    }

    // ------------------------------------------------------------------------------------------------ offsets

    static void offsetChecks() throws Exception {
        String topic = prefix + "-offsets";
        String group = prefix + "-offsets-g";
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        long base = System.currentTimeMillis() - 200_000;
        List<RecordMetadata> md0 = new ArrayList<>();
        List<RecordMetadata> md1 = new ArrayList<>();
        check("offsets: produce 100 records with explicit CreateTime timestamps to partition 0 and 10 to partition 1", () -> {
            createTopic(topic, 2);
            List<ProducerRecord<String, String>> r0 = new ArrayList<>();
            for (int i = 0; i < 100; i++) {
                r0.add(new ProducerRecord<>(topic, 0, base + i * 1000L, "ok-" + i, "ov-" + i));
            }
            List<ProducerRecord<String, String>> r1 = new ArrayList<>();
            for (int i = 0; i < 10; i++) {
                r1.add(new ProducerRecord<>(topic, 1, base + 150_000L + i * 1000L, "ok1-" + i, "ov1-" + i));
            }
            try (KafkaProducer<String, String> p = new KafkaProducer<>(producerProps())) {
                md0.addAll(sendAll(p, r0));
                md1.addAll(sendAll(p, r1));
            }
            for (int i = 0; i < 100; i++) {
                require(md0.get(i).partition() == 0 && md0.get(i).timestamp() == base + i * 1000L,
                        "record %d acked on p%d with timestamp %d (sent %d)", i, md0.get(i).partition(),
                        md0.get(i).timestamp(), base + i * 1000L);
            }
        });
        check("offsets: commitSync with metadata strings; committed() returns offsets and metadata (same and new consumer)", () -> {
            require(md0.size() == 100 && md1.size() == 10, "produce step failed");
            Map<TopicPartition, OffsetAndMetadata> commit = Map.of(
                    p0, new OffsetAndMetadata(md0.get(42).offset(), "meta-p0: processed up to ov-41 \u2713"),
                    p1, new OffsetAndMetadata(md1.get(3).offset(), "{\"p\":1}"));
            try (KafkaConsumer<String, String> c = new KafkaConsumer<>(consumerProps(group))) {
                c.assign(List.of(p0, p1));
                c.commitSync(commit, Duration.ofSeconds(15));
                Map<TopicPartition, OffsetAndMetadata> got = c.committed(Set.of(p0, p1), Duration.ofSeconds(15));
                require(equalCommits(got, commit), "committed() %s, committed %s", got, commit);
            }
            try (KafkaConsumer<String, String> c = new KafkaConsumer<>(consumerProps(group))) {
                Map<TopicPartition, OffsetAndMetadata> got = c.committed(Set.of(p0, p1), Duration.ofSeconds(15));
                require(equalCommits(got, commit), "new consumer: committed() %s, committed %s", got, commit);
                c.assign(List.of(p0));
                ConsumerRecords<String, String> rs = ConsumerRecords.empty();
                long deadline = System.currentTimeMillis() + 15000;
                while (rs.isEmpty() && System.currentTimeMillis() < deadline) {
                    rs = c.poll(Duration.ofMillis(200));
                }
                require(!rs.isEmpty(), "no records after assign");
                ConsumerRecord<String, String> first = rs.iterator().next();
                require(first.offset() == md0.get(42).offset() && first.value().equals("ov-42"),
                        "first record after assign is %s@%d, want ov-42@%d", first.value(), first.offset(), md0.get(42).offset());
            }
        });
        check("offsets: seekToBeginning / seekToEnd / beginningOffsets / endOffsets", () -> {
            require(md0.size() == 100, "produce step failed");
            try (KafkaConsumer<String, String> c = new KafkaConsumer<>(consumerProps(null))) {
                c.assign(List.of(p0, p1));
                Map<TopicPartition, Long> begin = c.beginningOffsets(List.of(p0, p1), Duration.ofSeconds(15));
                Map<TopicPartition, Long> end = c.endOffsets(List.of(p0, p1), Duration.ofSeconds(15));
                require(begin.get(p0) == md0.get(0).offset() && begin.get(p1) == md1.get(0).offset(),
                        "beginningOffsets %s, first records at %d / %d", begin, md0.get(0).offset(), md1.get(0).offset());
                require(end.get(p0) == md0.get(99).offset() + 1 && end.get(p1) == md1.get(9).offset() + 1,
                        "endOffsets %s, last records at %d / %d", end, md0.get(99).offset(), md1.get(9).offset());
                c.seekToEnd(List.of(p0, p1));
                require(c.position(p0) == end.get(p0) && c.position(p1) == end.get(p1), "after seekToEnd positions %d/%d, end %s",
                        c.position(p0), c.position(p1), end);
                c.seekToBeginning(List.of(p0));
                require(c.position(p0) == begin.get(p0), "after seekToBeginning position %d, begin %d", c.position(p0), begin.get(p0));
                c.pause(List.of(p1));
                ConsumerRecords<String, String> rs = ConsumerRecords.empty();
                long deadline = System.currentTimeMillis() + 15000;
                while (rs.isEmpty() && System.currentTimeMillis() < deadline) {
                    rs = c.poll(Duration.ofMillis(200));
                }
                require(!rs.isEmpty(), "no records after seekToBeginning");
                ConsumerRecord<String, String> first = rs.iterator().next();
                require(first.value().equals("ov-0") && first.offset() == begin.get(p0), "first record %s@%d", first.value(),
                        first.offset());
                require(first.timestampType() == TimestampType.CREATE_TIME
                        && (onKinesis ? first.timestamp() > base : first.timestamp() == base),
                        "first record timestamp %s %d, produced with CreateTime %d", first.timestampType(), first.timestamp(), base);
            }
        });
        notOnKinesis("offsets: offsetsForTimes (exact, between records, before first, after last)",
                "records carry their arrival time, not the timestamps the producer set", () -> {
            require(md0.size() == 100, "produce step failed");
            try (KafkaConsumer<String, String> c = new KafkaConsumer<>(consumerProps(null))) {
                List<String> wrong = new ArrayList<>();
                for (int k : new int[] {0, 37, 99}) {
                    for (long delta : new long[] {0, -500}) {
                        long t = base + k * 1000L + delta;
                        OffsetAndTimestamp o = c.offsetsForTimes(Map.of(p0, t), Duration.ofSeconds(15)).get(p0);
                        if (o == null || o.offset() != md0.get(k).offset() || o.timestamp() != base + k * 1000L) {
                            wrong.add(String.format("query t=base+%d -> %s (want record ov-%d: offset %d, timestamp base+%d)", t - base,
                                    o == null ? "null" : "offset " + o.offset() + ", timestamp base+" + (o.timestamp() - base),
                                    k, md0.get(k).offset(), k * 1000L));
                        }
                    }
                }
                OffsetAndTimestamp early = c.offsetsForTimes(Map.of(p0, base - 3_600_000L), Duration.ofSeconds(15)).get(p0);
                if (early == null || early.offset() != md0.get(0).offset()) {
                    wrong.add("t=base-1h -> " + early + " (want offset " + md0.get(0).offset() + ")");
                }
                OffsetAndTimestamp late = c.offsetsForTimes(Map.of(p0, base + 100_000L + 50_000L), Duration.ofSeconds(15)).get(p0);
                if (late != null) {
                    wrong.add("t after the last record -> " + late + " (want null)");
                }
                require(wrong.isEmpty(), "%s", wrong);
            }
        });
        maxTimestampCheck(topic, base, md1);
    }

    static void maxTimestampCheck(String topic, long base, List<RecordMetadata> md1) {
        notOnKinesis("admin.listOffsets earliest / latest / maxTimestamp (the newest record is not the one with the largest timestamp)",
                "arrival times never go backwards, so the newest record always has the largest", () -> {
            require(md1.size() == 10, "produce step failed");
            TopicPartition p1 = new TopicPartition(topic, 1);
            RecordMetadata old;
            try (KafkaProducer<String, String> p = new KafkaProducer<>(producerProps())) {
                // appended last, but stamped before every other record of the partition
                old = p.send(new ProducerRecord<>(topic, 1, base, "ok1-old", "ov1-old")).get(30, TimeUnit.SECONDS);
            }
            long earliest = admin.listOffsets(Map.of(p1, OffsetSpec.earliest())).partitionResult(p1).get(30, TimeUnit.SECONDS).offset();
            long latest = admin.listOffsets(Map.of(p1, OffsetSpec.latest())).partitionResult(p1).get(30, TimeUnit.SECONDS).offset();
            ListOffsetsResult.ListOffsetsResultInfo max = admin.listOffsets(Map.of(p1, OffsetSpec.maxTimestamp()))
                    .partitionResult(p1).get(30, TimeUnit.SECONDS);
            require(earliest == md1.get(0).offset(), "earliest %d, first record at %d", earliest, md1.get(0).offset());
            require(latest == old.offset() + 1, "latest %d, last record at %d", latest, old.offset());
            long wantTs = base + 150_000L + 9_000L;
            require(max.offset() == md1.get(9).offset() && max.timestamp() == wantTs,
                    "maxTimestamp -> offset %d timestamp %d; the largest timestamp %d is at offset %d (offset %d has %d)",
                    max.offset(), max.timestamp(), wantTs, md1.get(9).offset(), old.offset(), base);
        });
    }

    static boolean equalCommits(Map<TopicPartition, OffsetAndMetadata> got, Map<TopicPartition, OffsetAndMetadata> want) {
        if (got == null) {
            return false;
        }
        for (Map.Entry<TopicPartition, OffsetAndMetadata> e : want.entrySet()) {
            OffsetAndMetadata g = got.get(e.getKey());
            if (g == null || g.offset() != e.getValue().offset() || !e.getValue().metadata().equals(g.metadata())) {
                return false;
            }
        }
        return true;
    }

    // ------------------------------------------------------------------------------------------------ kafka-consumer-groups

    static final class ToolOutput {
        int exit;
        String text;
    }

    static ToolOutput runConsumerGroups(String... args) throws Exception {
        List<String> cmd = new ArrayList<>();
        cmd.add(Path.of(System.getProperty("java.home"), "bin", "java").toString());
        cmd.addAll(List.of("-Xmx128m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "-cp", System.getProperty("java.class.path"),
                "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand", "--bootstrap-server", bootstrap));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).redirectErrorStream(true).start();
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        Thread reader = new Thread(() -> {
            try (InputStream in = p.getInputStream()) {
                in.transferTo(buf);
            } catch (Exception ignored) {
            }
        });
        reader.start();
        if (!p.waitFor(90, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            reader.join(5000);
            throw new CheckFailed("kafka-consumer-groups " + String.join(" ", args) + " did not finish in 90 s; output:\n"
                    + buf.toString(StandardCharsets.UTF_8));
        }
        reader.join(5000);
        ToolOutput o = new ToolOutput();
        o.exit = p.exitValue();
        o.text = buf.toString(StandardCharsets.UTF_8);
        return o;
    }

    /** Parses the tool's aligned table: the header line starting with firstColumn, then the rows under it. */
    static List<Map<String, String>> parseTable(String text, String firstColumn, String mustHave) {
        List<Map<String, String>> rows = new ArrayList<>();
        String[] lines = text.split("\n");
        for (int i = 0; i < lines.length; i++) {
            String h = lines[i];
            if (!h.startsWith(firstColumn + " ") || !h.contains(mustHave)) {
                continue;
            }
            List<String> names = new ArrayList<>();
            List<Integer> starts = new ArrayList<>();
            java.util.regex.Matcher m = java.util.regex.Pattern.compile("\\S+(?: \\(ID\\))?").matcher(h);
            while (m.find()) {
                names.add(m.group());
                starts.add(m.start());
            }
            for (int j = i + 1; j < lines.length && !lines[j].isBlank(); j++) {
                String line = lines[j];
                Map<String, String> row = new LinkedHashMap<>();
                for (int c = 0; c < names.size(); c++) {
                    int s = Math.min(starts.get(c), line.length());
                    int e = c + 1 < names.size() ? Math.min(starts.get(c + 1), line.length()) : line.length();
                    row.put(names.get(c), line.substring(s, e).trim());
                }
                rows.add(row);
            }
            break;
        }
        return rows;
    }

    static void consumerGroupsToolChecks() throws Exception {
        String topic = prefix + "-lag";
        String group = prefix + "-lag-g";
        TopicPartition p0 = new TopicPartition(topic, 0);
        TopicPartition p1 = new TopicPartition(topic, 1);
        Map<Integer, Long> committedAt = new HashMap<>();
        Map<Integer, Long> endAt = new HashMap<>();
        check("kafka-consumer-groups setup: a group that committed part of a 2-partition topic", () -> {
            createTopic(topic, 2);
            List<ProducerRecord<String, String>> recs = new ArrayList<>();
            for (int i = 0; i < 30; i++) {
                recs.add(new ProducerRecord<>(topic, 0, "lk" + i, "lv" + i));
            }
            for (int i = 0; i < 20; i++) {
                recs.add(new ProducerRecord<>(topic, 1, "lk" + i, "lv" + i));
            }
            List<RecordMetadata> md;
            try (KafkaProducer<String, String> p = new KafkaProducer<>(producerProps())) {
                md = sendAll(p, recs);
            }
            committedAt.put(0, md.get(10).offset());
            committedAt.put(1, md.get(30 + 5).offset());
            endAt.put(0, md.get(29).offset() + 1);
            endAt.put(1, md.get(49).offset() + 1);
            try (KafkaConsumer<String, String> c = new KafkaConsumer<>(consumerProps(group))) {
                c.assign(List.of(p0, p1));
                c.commitSync(Map.of(p0, new OffsetAndMetadata(committedAt.get(0)), p1, new OffsetAndMetadata(committedAt.get(1))),
                        Duration.ofSeconds(15));
            }
        });
        check("kafka-consumer-groups --list shows the group", () -> {
            ToolOutput o = runConsumerGroups("--list");
            require(o.exit == 0, "exit %d, output:\n%s", o.exit, o.text);
            require(List.of(o.text.split("\\s+")).contains(group), "%s not in output:\n%s", group, o.text);
        });
        check("kafka-consumer-groups --describe (no active members): CURRENT-OFFSET, LOG-END-OFFSET, LAG", () -> {
            ToolOutput o = runConsumerGroups("--describe", "--group", group);
            require(o.exit == 0, "exit %d, output:\n%s", o.exit, o.text);
            checkDescribeRows(o.text, group, topic, committedAt, endAt, false);
        });
        Member active = new Member(prefix + "-lag-member", group, topic);
        // The member pauses its partitions as soon as it gets them, so the committed offsets stay where they are.
        KafkaConsumer<String, String> ac = active.consumer;
        Thread t = new Thread(() -> {
            try {
                ac.subscribe(List.of(topic), new ConsumerRebalanceListener() {
                    @Override
                    public void onPartitionsRevoked(java.util.Collection<TopicPartition> parts) {
                        active.assignment = Set.of();
                    }

                    @Override
                    public void onPartitionsAssigned(java.util.Collection<TopicPartition> parts) {
                        ac.pause(parts);
                        active.assignment = Set.copyOf(ac.assignment());
                    }
                });
                while (!active.stop) {
                    for (ConsumerRecord<String, String> r : ac.poll(Duration.ofMillis(100))) {
                        active.got.add(r);
                    }
                }
            } catch (Throwable e) {
                active.error = e;
            } finally {
                ac.close();
            }
        }, "lag-member");
        t.start();
        try {
            check("kafka-consumer-groups --describe with an active member: CONSUMER-ID/HOST/CLIENT-ID and the same lag", () -> {
                require(waitFor(30000, () -> active.assignment.size() == 2), "member never got both partitions (error %s)",
                        active.error);
                ToolOutput o = runConsumerGroups("--describe", "--group", group);
                require(o.exit == 0, "exit %d, output:\n%s", o.exit, o.text);
                checkDescribeRows(o.text, group, topic, committedAt, endAt, true);
                require(active.got.isEmpty(), "the paused member consumed %d records", active.got.size());
            });
            check("kafka-consumer-groups --describe --state: Stable, 1 member, range assignor", () -> {
                ToolOutput o = runConsumerGroups("--describe", "--group", group, "--state");
                require(o.exit == 0, "exit %d, output:\n%s", o.exit, o.text);
                List<Map<String, String>> rows = parseTable(o.text, "GROUP", "STATE");
                require(rows.size() == 1, "rows %s in output:\n%s", rows, o.text);
                Map<String, String> r = rows.get(0);
                require("Stable".equals(r.get("STATE")) && "1".equals(r.get("#MEMBERS"))
                        && "range".equals(r.get("ASSIGNMENT-STRATEGY")), "row %s; output:\n%s", r, o.text);
            });
            check("kafka-consumer-groups --describe --members: one member with 2 partitions", () -> {
                ToolOutput o = runConsumerGroups("--describe", "--group", group, "--members");
                require(o.exit == 0, "exit %d, output:\n%s", o.exit, o.text);
                List<Map<String, String>> rows = parseTable(o.text, "GROUP", "CONSUMER-ID");
                require(rows.size() == 1 && "2".equals(rows.get(0).get("#PARTITIONS"))
                        && (prefix + "-lag-member").equals(rows.get(0).get("CLIENT-ID")), "rows %s; output:\n%s", rows, o.text);
            });
        } finally {
            active.stop = true;
            t.join(30000);
        }
        check("kafka-consumer-groups --reset-offsets --to-earliest, then --shift-by 3 (--execute): committed offsets follow", () -> {
            // The tool resets only an inactive group: wait for the member's LeaveGroup.
            require(waitFor(30000, () -> {
                try {
                    return admin.describeConsumerGroups(List.of(group)).all().get().get(group).members().isEmpty();
                } catch (Exception e) {
                    return false;
                }
            }), "the group still has members");
            ToolOutput o = runConsumerGroups("--reset-offsets", "--group", group, "--topic", topic, "--to-earliest", "--execute");
            require(o.exit == 0, "exit %d, output:\n%s", o.exit, o.text);
            Map<TopicPartition, OffsetAndMetadata> at = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
            require(at.get(p0).offset() == 0 && at.get(p1).offset() == 0, "after --to-earliest: %s", at);
            o = runConsumerGroups("--reset-offsets", "--group", group, "--topic", topic, "--shift-by", "3", "--execute");
            require(o.exit == 0, "exit %d, output:\n%s", o.exit, o.text);
            at = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
            require(at.get(p0).offset() == 3 && at.get(p1).offset() == 3, "after --shift-by 3: %s", at);
        });
    }

    static void checkDescribeRows(String text, String group, String topic, Map<Integer, Long> committedAt,
            Map<Integer, Long> endAt, boolean active) {
        List<Map<String, String>> rows = parseTable(text, "GROUP", "CURRENT-OFFSET");
        require(rows.size() == 2, "want 2 rows, got %s; output:\n%s", rows, text);
        for (Map<String, String> r : rows) {
            require(r.containsKey("LOG-END-OFFSET") && r.containsKey("LAG"), "columns %s", r.keySet());
            int part = Integer.parseInt(r.get("PARTITION"));
            long cur = committedAt.get(part);
            long end = endAt.get(part);
            require(group.equals(r.get("GROUP")) && topic.equals(r.get("TOPIC")), "row %s", r);
            require(String.valueOf(cur).equals(r.get("CURRENT-OFFSET")) && String.valueOf(end).equals(r.get("LOG-END-OFFSET"))
                    && String.valueOf(end - cur).equals(r.get("LAG")),
                    "partition %d: want CURRENT-OFFSET %d LOG-END-OFFSET %d LAG %d, row %s; output:\n%s", part, cur, end,
                    end - cur, r, text);
            if (active) {
                require(!"-".equals(r.get("CONSUMER-ID")) && !"-".equals(r.get("HOST"))
                        && (prefix + "-lag-member").equals(r.get("CLIENT-ID")), "member columns in %s", r);
            } else {
                require("-".equals(r.get("CONSUMER-ID")), "CONSUMER-ID in %s", r);
            }
        }
    }

    // ------------------------------------------------------------------------------------------------ transactions

    /** Transactions and the KIP-848 consumer protocol: run where the cluster behind strait provides them. */
    static void transactionChecks() throws Exception {
        String topic = prefix + "-txn";
        createTopic(topic, 2);
        List<String> committed = new ArrayList<>();
        check("transactions: a transactional producer commits 100 records and aborts 50 (2 partitions)", () -> {
            try (KafkaProducer<String, String> p = new KafkaProducer<>(producerProps(
                    ProducerConfig.TRANSACTIONAL_ID_CONFIG, prefix + "-tx"))) {
                p.initTransactions();
                p.beginTransaction();
                for (int i = 0; i < 100; i++) {
                    p.send(new ProducerRecord<>(topic, i % 2, "k" + i, "committed-" + i));
                    committed.add("committed-" + i);
                }
                p.commitTransaction();
                p.beginTransaction();
                for (int i = 0; i < 50; i++) {
                    p.send(new ProducerRecord<>(topic, i % 2, "k" + i, "aborted-" + i));
                }
                p.flush();
                p.abortTransaction();
            }
        });
        check("transactions: a read_committed consumer sees exactly the committed records, in order per partition", () -> {
            List<String> seen = new ArrayList<>();
            try (KafkaConsumer<String, String> c = new KafkaConsumer<>(consumerProps(null,
                    ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"))) {
                List<TopicPartition> tps = List.of(new TopicPartition(topic, 0), new TopicPartition(topic, 1));
                c.assign(tps);
                c.seekToBeginning(tps);
                long deadline = System.currentTimeMillis() + 30000;
                while (seen.size() < committed.size() && System.currentTimeMillis() < deadline) {
                    for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                        seen.add(r.value());
                    }
                }
                // Anything after the commit would be an aborted record leaking through.
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofSeconds(1))) {
                    seen.add(r.value());
                }
            }
            List<String> sortedSeen = new ArrayList<>(seen);
            Collections.sort(sortedSeen);
            List<String> sortedWant = new ArrayList<>(committed);
            Collections.sort(sortedWant);
            require(sortedSeen.equals(sortedWant), "read %d records (want %d); aborted among them: %s", seen.size(),
                    committed.size(), seen.stream().filter(v -> v.startsWith("aborted")).limit(5).collect(Collectors.toList()));
        });
        check("transactions: a read_uncommitted consumer also sees the aborted records", () -> {
            List<ConsumerRecord<String, String>> all = readAll(topic, 2, 30000);
            long aborted = all.stream().filter(r -> r.value().startsWith("aborted")).count();
            require(aborted == 50, "aborted records seen: %d of 50 (total %d)", aborted, all.size());
        });
        String group = prefix + "-g848";
        check("consumer group protocol (KIP-848): a `consumer`-protocol member is assigned both partitions and commits", () -> {
            try (KafkaConsumer<String, String> c = new KafkaConsumer<>(consumerProps(null,
                    ConsumerConfig.GROUP_ID_CONFIG, group, ConsumerConfig.GROUP_PROTOCOL_CONFIG, "consumer",
                    ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"))) {
                c.subscribe(List.of(topic));
                int n = 0;
                long deadline = System.currentTimeMillis() + 45000;
                while (n < committed.size() && System.currentTimeMillis() < deadline) {
                    n += c.poll(Duration.ofMillis(200)).count();
                }
                require(n == committed.size(), "consumed %d of %d", n, committed.size());
                require(c.assignment().size() == 2, "assignment %s", c.assignment());
                c.commitSync();
            }
            var offsets = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get(30, TimeUnit.SECONDS);
            require(offsets.size() == 2, "committed offsets %s", offsets);
        });
    }

    // ------------------------------------------------------------------------------------------------ cross-protocol

    /** Kinesis PutRecord placed by murmur2 on a Kafka-made topic: strait's routing, not Kinesis's MD5. */
    static void murmur2Cross(String name, Body body) {
        if (onKinesis) {
            skip(name, "on Kinesis: Kinesis routes PutRecord by MD5 of the key (the Md5RangePartitioner checks below cover it)");
        } else {
            kinesisCheck(name, body);
        }
    }

    static void crossProtocolChecks() throws Exception {
        String topic = prefix + "-xp";
        int parts = 4;
        Map<String, Integer> kinesisShard = new HashMap<>();
        Map<String, Integer> kafkaPartition = new HashMap<>();
        murmur2Cross("cross: Kinesis PutRecords (k0..k99) on a Kafka-created 4-partition topic land on the murmur2 partition", () -> {
            createTopic(topic, parts);
            List<PutRecordsRequestEntry> entries = new ArrayList<>();
            for (int i = 0; i < 100; i++) {
                entries.add(PutRecordsRequestEntry.builder().partitionKey("k" + i)
                        .data(SdkBytes.fromUtf8String("kinesis-" + i)).build());
            }
            PutRecordsResponse r = kinesis.putRecords(b -> b.streamName(topic).records(entries));
            require(r.failedRecordCount() == null || r.failedRecordCount() == 0, "FailedRecordCount=%s", r.failedRecordCount());
            List<String> wrong = new ArrayList<>();
            for (int i = 0; i < 100; i++) {
                PutRecordsResultEntry e = r.records().get(i);
                int want = murmurPartition("k" + i, parts);
                if (!shardId(want).equals(e.shardId())) {
                    wrong.add("k" + i + " -> " + e.shardId() + " (murmur2: " + want + ")");
                }
                kinesisShard.put("k" + i, Integer.parseInt(e.shardId().substring("shardId-".length())));
            }
            require(wrong.isEmpty(), "%d keys off their murmur2 partition: %s", wrong.size(), wrong.subList(0, Math.min(10, wrong.size())));
        });
        murmur2Cross("cross: Java producer writes the same keys; each lands on the partition Kinesis used", () -> {
            List<ProducerRecord<String, String>> recs = new ArrayList<>();
            for (int i = 0; i < 100; i++) {
                recs.add(new ProducerRecord<>(topic, "k" + i, "kafka-" + i));
            }
            List<RecordMetadata> md;
            try (KafkaProducer<String, String> p = new KafkaProducer<>(producerProps())) {
                md = sendAll(p, recs);
            }
            List<String> wrong = new ArrayList<>();
            for (int i = 0; i < 100; i++) {
                kafkaPartition.put("k" + i, md.get(i).partition());
                Integer k = kinesisShard.get("k" + i);
                if (k == null || k != md.get(i).partition()) {
                    wrong.add("k" + i + ": kafka p" + md.get(i).partition() + ", kinesis " + k);
                }
            }
            require(wrong.isEmpty(), "%s", wrong);
        });
        murmur2Cross("cross: a Java consumer group reads all 200 records; each key's records from both producers share a partition", () -> {
            Map<String, Set<Integer>> partsByKey = new HashMap<>();
            Map<String, String> seen = new HashMap<>();
            List<String> dups = new ArrayList<>();
            try (KafkaConsumer<String, String> c = new KafkaConsumer<>(consumerProps(prefix + "-xp-g"))) {
                c.subscribe(List.of(topic));
                long deadline = System.currentTimeMillis() + 30000;
                while (seen.size() < 200 && System.currentTimeMillis() < deadline) {
                    for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) {
                        if (seen.put(r.value(), r.key()) != null) {
                            dups.add(r.value());
                        }
                        partsByKey.computeIfAbsent(r.key(), k -> new HashSet<>()).add(r.partition());
                    }
                    c.commitSync();
                }
            }
            require(seen.size() == 200, "read %d distinct records of 200", seen.size());
            require(dups.isEmpty(), "duplicates %s", dups);
            List<String> wrong = new ArrayList<>();
            for (int i = 0; i < 100; i++) {
                String k = "k" + i;
                if (!k.equals(seen.get("kinesis-" + i)) || !k.equals(seen.get("kafka-" + i))) {
                    wrong.add(k + ": keys read " + seen.get("kinesis-" + i) + "/" + seen.get("kafka-" + i));
                }
                if (partsByKey.getOrDefault(k, Set.of()).size() != 1) {
                    wrong.add(k + " in partitions " + partsByKey.get(k));
                }
            }
            require(wrong.isEmpty(), "%s", wrong.subList(0, Math.min(10, wrong.size())));
        });
        murmur2Cross("cross: Kinesis GetRecords on the topic returns the Kafka-produced records (PartitionKey = key, Data = value)", () -> {
            Map<String, String> found = new HashMap<>(); // data -> shard
            Map<String, String> pkOf = new HashMap<>();
            for (int s = 0; s < parts; s++) {
                for (Record r : readShard(topic, shardId(s))) {
                    found.put(utf8(r.data()), shardId(s));
                    pkOf.put(utf8(r.data()), r.partitionKey());
                }
            }
            List<String> wrong = new ArrayList<>();
            for (int i = 0; i < 100; i++) {
                for (String src : List.of("kafka-", "kinesis-")) {
                    String d = src + i;
                    Integer want = kafkaPartition.getOrDefault("k" + i, murmurPartition("k" + i, parts));
                    if (!shardId(want).equals(found.get(d)) || !("k" + i).equals(pkOf.get(d))) {
                        wrong.add(d + ": shard " + found.get(d) + " pk " + pkOf.get(d) + " (want " + shardId(want) + ", k" + i + ")");
                    }
                }
            }
            require(wrong.isEmpty(), "%d wrong: %s", wrong.size(), wrong.subList(0, Math.min(10, wrong.size())));
        });

        // A stream created through Kinesis (kinesis-md5) with 3 shards (2^128 is not divisible by 3).
        String stream = prefix + "-md5";
        int shards = 3;
        Map<String, Integer> md5Partition = new HashMap<>();
        List<Shard> listed = new ArrayList<>();
        kinesisCheck("Md5RangePartitioner ranges equal the HashKeyRanges ListShards reports for a Kinesis-created 3-shard stream", () -> {
            kinesis.createStream(b -> b.streamName(stream).shardCount(shards));
            kinesis.waiter().waitUntilStreamExists(b -> b.streamName(stream));
            listed.addAll(kinesis.listShards(b -> b.streamName(stream)).shards());
            require(listed.size() == shards, "ListShards %s", listed);
            for (int i = 0; i < shards; i++) {
                Shard s = listed.get(i);
                require(s.shardId().equals(shardId(i)), "shard %d is %s", i, s.shardId());
                BigInteger start = new BigInteger(s.hashKeyRange().startingHashKey());
                BigInteger end = new BigInteger(s.hashKeyRange().endingHashKey());
                require(start.equals(Md5RangePartitioner.rangeStart(i, shards)) && end.equals(Md5RangePartitioner.rangeEnd(i, shards)),
                        "shard %d range [%s, %s], partitioner [%s, %s]", i, start, end, Md5RangePartitioner.rangeStart(i, shards),
                        Md5RangePartitioner.rangeEnd(i, shards));
            }
        });
        kinesisCheck("cross: Java producer with Md5RangePartitioner on a Kinesis-created stream; GetRecords finds each key on the "
                + "shard whose HashKeyRange contains md5(key)", () -> {
            List<ProducerRecord<String, String>> recs = new ArrayList<>();
            for (int i = 0; i < 100; i++) {
                recs.add(new ProducerRecord<>(stream, "k" + i, "md5-kafka-" + i));
            }
            List<RecordMetadata> md;
            try (KafkaProducer<String, String> p = new KafkaProducer<>(producerProps(
                    ProducerConfig.PARTITIONER_CLASS_CONFIG, Md5RangePartitioner.class.getName()))) {
                md = sendAll(p, recs);
            }
            for (int i = 0; i < 100; i++) {
                md5Partition.put("k" + i, md.get(i).partition());
            }
            require(!listed.isEmpty(), "ListShards step failed");
            Map<String, List<String>> where = new HashMap<>(); // key -> shard ids it was found on
            for (Shard s : listed) {
                for (Record r : readShard(stream, s.shardId())) {
                    if (utf8(r.data()).startsWith("md5-kafka-")) {
                        where.computeIfAbsent(r.partitionKey(), k -> new ArrayList<>()).add(s.shardId());
                    }
                }
            }
            List<String> wrong = new ArrayList<>();
            for (int i = 0; i < 100; i++) {
                String k = "k" + i;
                BigInteger h = Md5RangePartitioner.hashKey(k);
                String want = null;
                for (Shard s : listed) {
                    if (h.compareTo(new BigInteger(s.hashKeyRange().startingHashKey())) >= 0
                            && h.compareTo(new BigInteger(s.hashKeyRange().endingHashKey())) <= 0) {
                        want = s.shardId();
                    }
                }
                if (!List.of(String.valueOf(want)).equals(where.get(k)) || !shardId(md.get(i).partition()).equals(want)) {
                    wrong.add(k + ": found on " + where.get(k) + ", produced to p" + md.get(i).partition() + ", md5 range says " + want);
                }
            }
            require(wrong.isEmpty(), "%d wrong: %s", wrong.size(), wrong.subList(0, Math.min(10, wrong.size())));
        });
        kinesisCheck("cross: Kinesis PutRecord with the same keys lands on the partitions the Md5RangePartitioner chose", () -> {
            require(!md5Partition.isEmpty(), "producer step failed");
            List<String> wrong = new ArrayList<>();
            for (int i = 0; i < 20; i++) {
                String k = "k" + i;
                PutRecordResponse r = kinesis.putRecord(b -> b.streamName(stream).partitionKey(k)
                        .data(SdkBytes.fromUtf8String("md5-kinesis-" + k)));
                if (!shardId(md5Partition.get(k)).equals(r.shardId())) {
                    wrong.add(k + ": kinesis " + r.shardId() + ", kafka p" + md5Partition.get(k));
                }
            }
            require(wrong.isEmpty(), "%s", wrong);
        });
    }
}
