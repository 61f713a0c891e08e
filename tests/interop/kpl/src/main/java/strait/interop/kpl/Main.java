package strait.interop.kpl;

import java.io.FileInputStream;
import java.io.InputStream;
import java.math.BigInteger;
import java.net.URI;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.MessageDigest;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;

import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

import com.google.common.util.concurrent.ListenableFuture;

import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.awscore.retry.AwsRetryStrategy;
import software.amazon.awssdk.core.client.config.ClientOverrideConfiguration;
import software.amazon.awssdk.http.urlconnection.UrlConnectionHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.kinesis.KinesisClient;
import software.amazon.awssdk.services.kinesis.model.GetRecordsResponse;
import software.amazon.awssdk.services.kinesis.model.Record;
import software.amazon.awssdk.services.kinesis.model.Shard;
import software.amazon.awssdk.services.kinesis.model.ShardIteratorType;
import software.amazon.awssdk.services.kinesis.model.StreamStatus;
import software.amazon.kinesis.producer.Attempt;
import software.amazon.kinesis.producer.KinesisProducer;
import software.amazon.kinesis.producer.KinesisProducerConfiguration;
import software.amazon.kinesis.producer.UserRecordResult;

/**
 * KPL (aggregation on, TLS with certificate verification) → strait → read back as plain user records over the
 * Kafka listener (a consumer group) and over GetRecords.
 *
 * Environment: STRAIT_ENDPOINT (https://localhost:PORT; http:// also works if the KPL is not in the picture),
 * STRAIT_CA (PEM the KPL and the SDK client trust), STRAIT_KAFKA (host:port). Optional: KPL_RECORDS (5000),
 * KPL_KEYS (100), KPL_SHARDS (4), KPL_TEMP_DIR (where the KPL unpacks its native daemon).
 * Prints one PASS/FAIL line per check and "kpl: N passed, M failed"; exit status 0 only if every check passed.
 */
public final class Main {
    private Main() {}

    /** Data of the warm-up user record (not one of the n checked ones). */
    static final byte[] WARMUP = "kpl-warmup-record".getBytes(StandardCharsets.UTF_8);

    /** The KPL magic prefix of an aggregated record. */
    static final byte[] KPL_MAGIC = {(byte) 0xF3, (byte) 0x89, (byte) 0x9A, (byte) 0xC2};

    // ------------------------------------------------------------------ tiny check runner

    interface Body { void run() throws Exception; }

    static int passed;
    static final List<String> failed = new ArrayList<>();

    static boolean check(String name, Body body) {
        long t0 = System.nanoTime();
        try {
            body.run();
            passed++;
            System.out.printf("PASS %s (%d ms)%n", name, (System.nanoTime() - t0) / 1_000_000);
            return true;
        } catch (Throwable t) {
            failed.add(name);
            String msg = t instanceof AssertionError ? t.getMessage() : t.getClass().getName() + ": " + t.getMessage();
            Throwable c = t.getCause();
            for (int d = 0; c != null && d < 4; d++, c = c.getCause()) {
                msg += "\n      caused by " + c.getClass().getName() + ": " + c.getMessage();
            }
            System.out.printf("FAIL %s: %s%n", name, msg);
            return false;
        } finally {
            System.out.flush();
        }
    }

    static void ok(boolean cond, String fmt, Object... args) {
        if (!cond) throw new AssertionError(String.format(fmt, args));
    }

    static <T> T need(T v, String what) {
        if (v == null) throw new AssertionError("blocked: " + what);
        return v;
    }

    // ------------------------------------------------------------------ data model

    /** One user record as put through the KPL. */
    record Put(int idx, String key, byte[] data) {}

    /** One record as read back (GetRecords or Kafka). */
    record Got(int shard, String pos, String key, byte[] data) {}

    static String env(String k, String d) {
        String v = System.getenv(k);
        return v == null || v.isBlank() ? d : v;
    }

    public static void main(String[] args) throws Exception {
        URI endpoint = URI.create(env("STRAIT_ENDPOINT", "https://localhost:4567"));
        String ca = env("STRAIT_CA", "");
        String kafka = env("STRAIT_KAFKA", "127.0.0.1:9092");
        int n = Integer.parseInt(env("KPL_RECORDS", "5000"));
        int nKeys = Integer.parseInt(env("KPL_KEYS", "100"));
        int nShards = Integer.parseInt(env("KPL_SHARDS", "4"));
        boolean tls = endpoint.getScheme().equals("https");
        String stream = "kpl-" + Long.toHexString(ThreadLocalRandom.current().nextLong() & 0xffffffffL);
        System.out.printf("# KPL interop: endpoint=%s kafka=%s ca=%s stream=%s records=%d keys=%d shards=%d%n",
                endpoint, kafka, ca.isEmpty() ? "<none>" : ca, stream, n, nKeys, nShards);

        TrustManager[] trust = ca.isEmpty() ? null : trustManagers(Path.of(ca));
        UrlConnectionHttpClient.Builder http = UrlConnectionHttpClient.builder()
                .connectionTimeout(Duration.ofSeconds(5)).socketTimeout(Duration.ofSeconds(30));
        if (trust != null) http.tlsTrustManagersProvider(() -> trust);
        KinesisClient kc = KinesisClient.builder()
                .endpointOverride(endpoint)
                .region(Region.US_EAST_1)
                .credentialsProvider(StaticCredentialsProvider.create(
                        AwsBasicCredentials.create("AKIASTRAITKPL0000000", "strait-kpl-dummy-secret")))
                .httpClient(http.build())
                .overrideConfiguration(ClientOverrideConfiguration.builder()
                        .retryStrategy(AwsRetryStrategy.doNotRetry()).apiCallTimeout(Duration.ofSeconds(30)).build())
                .build();

        // ---- the stream
        List<Shard> shards = new ArrayList<>();
        boolean created = check("setup: CreateStream with " + nShards + " shards (SDK client over "
                + (tls ? "TLS" : "plain HTTP") + ") and ListShards", () -> {
            kc.createStream(b -> b.streamName(stream).shardCount(nShards));
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (kc.describeStreamSummary(b -> b.streamName(stream)).streamDescriptionSummary().streamStatus()
                    != StreamStatus.ACTIVE) {
                ok(System.nanoTime() < deadline, "stream not ACTIVE after 20 s");
                Thread.sleep(100);
            }
            shards.addAll(kc.listShards(b -> b.streamName(stream)).shards());
            ok(shards.size() == nShards, "ListShards returned %d shards", shards.size());
        });
        if (!created) {
            finish(kc, null);
            return;
        }
        check("DescribeStreamSummary reports RecordDistributionStrategy USER_PARTITION_KEY (read by KPL 1.1)", () -> {
            // KPL 1.1 asks DescribeStreamSummary for this field: without it the daemon warns "Could not determine
            // RecordDistributionStrategy ... falling back to aggregation"; with AUTO it stops aggregating.
            var sum = kc.describeStreamSummary(b -> b.streamName(stream)).streamDescriptionSummary();
            ok("USER_PARTITION_KEY".equals(sum.recordDistributionStrategyAsString()),
                    "RecordDistributionStrategy is %s", sum.recordDistributionStrategyAsString());
        });

        // ---- the user records: nKeys keys, n records, small payloads so that many fit in one aggregate
        List<Put> puts = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            String key = String.format("user-key-%03d", i % nKeys);
            // ~100 bytes: small enough for hundreds per aggregate, large enough for several aggregates per shard
            // (the KPL's AggregationMaxSize is 51,200 bytes), so the order between aggregates is exercised too
            String d = String.format("r%05d|%s|%08x|", i, key, ThreadLocalRandom.current().nextInt());
            puts.add(new Put(i, key, (d + ".".repeat(100 - d.length())).getBytes(StandardCharsets.UTF_8)));
        }
        Map<String, Integer> expectedShard = new HashMap<>();
        for (int k = 0; k < nKeys; k++) {
            String key = String.format("user-key-%03d", k);
            expectedShard.put(key, shardIndexFor(key, shards));
        }

        // ---- produce through the KPL
        KinesisProducerConfiguration cfg = new KinesisProducerConfiguration()
                .setRegion("us-east-1")
                .setCredentialsProvider(StaticCredentialsProvider.create(
                        AwsBasicCredentials.create("AKIASTRAITKPL0000000", "strait-kpl-dummy-secret")))
                .setKinesisEndpoint(endpoint.getHost())
                .setKinesisPort(endpoint.getPort())
                .setVerifyCertificate(true)
                .setAggregationEnabled(true)
                .setRecordMaxBufferedTime(200)
                .setRecordTtl(30_000)
                .setRequestTimeout(10_000)
                .setConnectTimeout(5_000)
                .setMaxConnections(4)
                .setMetricsLevel("none")
                // never contacted with MetricsLevel=none; a closed local port in case it ever is
                .setCloudwatchEndpoint("localhost")
                .setCloudwatchPort(9)
                .setStsEndpoint("localhost")
                .setStsPort(9)
                .setLogLevel(env("KPL_LOG_LEVEL", "warning"))
                .setTempDirectory(env("KPL_TEMP_DIR", System.getProperty("java.io.tmpdir")));
        if (!ca.isEmpty()) {
            // The daemon's libcurl/OpenSSL trusts the KPL's bundled CA directory plus this PEM file (CA_FILE).
            cfg.setCaCertFile(Path.of(ca).toAbsolutePath().toString());
        }
        List<UserRecordResult> results = new ArrayList<>(Arrays.asList(new UserRecordResult[n]));
        List<Throwable> putErrors = new ArrayList<>();
        KinesisProducer kp = null;
        try {
            kp = new KinesisProducer(cfg);
            KinesisProducer kpf = kp;
            check("KPL: warm-up user record (the daemon loads its shard map; records put before that go out unaggregated)", () -> {
                UserRecordResult r = kpf.addUserRecord(stream, "kpl-warmup", ByteBuffer.wrap(WARMUP)).get(60, TimeUnit.SECONDS);
                ok(r.isSuccessful(), "warm-up put failed");
            });
            check("KPL: " + n + " user records over " + nKeys + " keys all succeed", () -> {
                List<ListenableFuture<UserRecordResult>> fs = new ArrayList<>(n);
                for (Put p : puts) fs.add(kpf.addUserRecord(stream, p.key(), ByteBuffer.wrap(p.data())));
                kpf.flush();
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(90);
                int bad = 0;
                for (int i = 0; i < n; i++) {
                    long left = Math.max(1, deadline - System.nanoTime());
                    try {
                        results.set(i, fs.get(i).get(left, TimeUnit.NANOSECONDS));
                    } catch (java.util.concurrent.ExecutionException e) {
                        putErrors.add(e.getCause());
                        if (e.getCause() instanceof software.amazon.kinesis.producer.UserRecordFailedException f) {
                            results.set(i, f.getResult());
                        }
                        bad++;
                    }
                }
                String firstErr = putErrors.isEmpty() ? "" : describeFailure(putErrors.get(0));
                ok(bad == 0, "%d of %d user records failed; first: %s", bad, n, firstErr);
                ok(results.stream().allMatch(r -> r != null && r.isSuccessful()), "a result is not successful");
            });
        } catch (Throwable t) {
            check("KPL: the producer starts (native daemon " + System.getProperty("os.arch") + ")", () -> {
                throw new AssertionError("KinesisProducer failed: " + t, t);
            });
        } finally {
            if (kp != null) {
                try {
                    kp.flushSync();
                } catch (RuntimeException ignored) {
                    // verdicts come from the futures
                }
                kp.destroy();
            }
        }

        boolean allResults = results.stream().allMatch(r -> r != null);
        check("KPL: every user record took exactly one attempt (no retries, no 'Wrong Shard')", () -> {
            ok(allResults, "some user records have no result");
            Map<String, Integer> codes = new TreeMap<>();
            int multi = 0;
            for (UserRecordResult r : results) {
                if (r.getAttempts().size() != 1) multi++;
                for (Attempt a : r.getAttempts()) {
                    if (!a.isSuccessful()) codes.merge(a.getErrorCode() + ": " + a.getErrorMessage(), 1, Integer::sum);
                }
            }
            ok(multi == 0 && codes.isEmpty(), "%d user records needed more than one attempt; failed attempts by error: %s",
                    multi, codes);
        });
        check("KPL: each user record's shard is the MD5 owner of its partition key", () -> {
            ok(allResults, "some user records have no result");
            int wrong = 0;
            String first = null;
            for (int i = 0; i < n; i++) {
                String want = shards.get(expectedShard.get(puts.get(i).key())).shardId();
                if (!want.equals(results.get(i).getShardId())) {
                    wrong++;
                    if (first == null) first = puts.get(i).key() + " → " + results.get(i).getShardId() + ", want " + want;
                }
            }
            ok(wrong == 0, "%d user records reported the wrong shard; first: %s", wrong, first);
        });
        // Aggregation: user records packed into one Kinesis record share its sequence number.
        Map<String, Integer> perKinesisRecord = new HashMap<>();
        if (allResults) {
            for (UserRecordResult r : results) perKinesisRecord.merge(r.getShardId() + "/" + r.getSequenceNumber(), 1, Integer::sum);
        }
        check("KPL: aggregation happened (user records share Kinesis records)", () -> {
            ok(allResults, "some user records have no result");
            int max = perKinesisRecord.values().stream().max(Integer::compare).orElse(0);
            System.out.printf("#   %d user records went out in %d Kinesis records (largest aggregate: %d user records)%n",
                    n, perKinesisRecord.size(), max);
            int shared = perKinesisRecord.values().stream().filter(c -> c > 1).mapToInt(Integer::intValue).sum();
            ok(max > 1 && shared * 2 >= n,
                    "only %d of %d user records shared a Kinesis record (%d Kinesis records): the KPL did not aggregate",
                    shared, n, perKinesisRecord.size());
        });

        // Informational: keys for which the KPL shipped a later-added user record in an earlier Kinesis record
        // (the KPL does not promise per-key order; strait's checks below use the order it acknowledged).
        Map<String, List<Integer>> ackOrder = new HashMap<>();
        if (allResults) {
            List<Integer> idx = new ArrayList<>();
            for (int i = 0; i < n; i++) idx.add(i);
            idx.sort(Comparator.<Integer, BigInteger>comparing(i -> new BigInteger(results.get(i).getSequenceNumber()))
                    .thenComparing(i -> i));
            for (int i : idx) ackOrder.computeIfAbsent(puts.get(i).key(), k -> new ArrayList<>()).add(i);
            int reordered = 0;
            for (List<Integer> l : ackOrder.values()) {
                for (int j = 1; j < l.size(); j++) if (l.get(j) < l.get(j - 1)) { reordered++; break; }
            }
            System.out.printf("#   keys whose Kinesis records run against the KPL put order: %d of %d%n", reordered,
                    ackOrder.size());
        }

        // ---- read back over GetRecords
        List<Got> viaGet = new ArrayList<>();
        int[] warmups = new int[2]; // warm-up records seen via GetRecords, via Kafka
        check("GetRecords: read every shard from TRIM_HORIZON (the warm-up record exactly once)", () -> {
            for (int s = 0; s < shards.size(); s++) {
                String sid = shards.get(s).shardId();
                String it = kc.getShardIterator(b -> b.streamName(stream).shardId(sid)
                        .shardIteratorType(ShardIteratorType.TRIM_HORIZON)).shardIterator();
                int empty = 0;
                while (it != null && empty < 2) {
                    String cur = it;
                    GetRecordsResponse r = kc.getRecords(b -> b.shardIterator(cur).limit(1000));
                    for (Record rec : r.records()) {
                        byte[] d = rec.data().asByteArray();
                        if (Arrays.equals(d, WARMUP)) warmups[0]++;
                        else viaGet.add(new Got(s, rec.sequenceNumber(), rec.partitionKey(), d));
                    }
                    if (r.records().isEmpty() && (r.millisBehindLatest() == null || r.millisBehindLatest() == 0)) empty++;
                    it = r.nextShardIterator();
                }
            }
            ok(warmups[0] == 1, "the warm-up record was read %d times", warmups[0]);
        });
        verifyReadBack("GetRecords", viaGet, puts, results, shards, allResults);
        if (allResults) {
            Map<String, Integer> lastIdx = new HashMap<>();
            Set<String> against = new HashSet<>();
            Map<String, Integer> idxOf = new HashMap<>();
            for (Put p : puts) idxOf.put(str(p.data()), p.idx());
            for (Got g : viaGet) {
                Integer i = idxOf.get(str(g.data()));
                if (i == null) continue;
                Integer prev = lastIdx.put(puts.get(i).key(), i);
                if (prev != null && prev > i) against.add(puts.get(i).key());
            }
            System.out.printf("#   keys read in another order than added to the KPL: %d of %d (the KPL does not promise it)%n",
                    against.size(), nKeys);
        }
        check("GetRecords: each Kinesis record's acknowledged sequence number is that of its first user record", () -> {
            ok(allResults, "blocked: no KPL results");
            Map<String, String> seqOf = new HashMap<>();
            for (Got g : viaGet) seqOf.put(str(g.data()), g.pos());
            Map<String, BigInteger> minRead = new HashMap<>();
            for (int i = 0; i < n; i++) {
                String at = seqOf.get(str(puts.get(i).data()));
                if (at == null) continue;
                minRead.merge(results.get(i).getSequenceNumber(), new BigInteger(at), BigInteger::min);
            }
            int bad = 0;
            String first = null;
            for (Map.Entry<String, BigInteger> e : minRead.entrySet()) {
                if (!new BigInteger(e.getKey()).equals(e.getValue())) {
                    bad++;
                    if (first == null) first = "acknowledged " + e.getKey() + ", first user record at " + e.getValue();
                }
            }
            ok(bad == 0, "%d of %d Kinesis records; first: %s", bad, minRead.size(), first);
        });
        check("GetRecords: sequence numbers strictly increase within each shard", () -> {
            Map<Integer, BigInteger> last = new HashMap<>();
            for (Got g : viaGet) {
                BigInteger s = new BigInteger(g.pos());
                BigInteger prev = last.put(g.shard(), s);
                ok(prev == null || s.compareTo(prev) > 0, "shard %d: %s after %s", g.shard(), s, prev);
            }
        });

        // ---- read back over the Kafka listener, as a consumer group
        List<Got> viaKafka = new ArrayList<>();
        String group = "kpl-group-" + stream;
        check("Kafka: consumer group '" + group + "' reads the topic until quiet (the warm-up record exactly once)", () -> {
            Properties p = new Properties();
            p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, kafka);
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
            p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
            p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
            p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
            p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "2000");
            try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
                c.subscribe(List.of(stream));
                // Poll until nothing new came for a while: 2 s once everything expected is in (to catch
                // duplicates or extras), 5 s otherwise (20 s before the first record); 60 s at most.
                long start = System.nanoTime();
                long deadline = start + TimeUnit.SECONDS.toNanos(60);
                long lastNew = start;
                while (System.nanoTime() < deadline) {
                    var recs = c.poll(Duration.ofMillis(300));
                    for (ConsumerRecord<byte[], byte[]> r : recs) {
                        if (Arrays.equals(r.value(), WARMUP)) {
                            warmups[1]++;
                            continue;
                        }
                        viaKafka.add(new Got(r.partition(), Long.toString(r.offset()),
                                r.key() == null ? null : new String(r.key(), StandardCharsets.UTF_8), r.value()));
                    }
                    long now = System.nanoTime();
                    if (!recs.isEmpty()) lastNew = now;
                    long quiet = viaKafka.size() >= n ? 2 : viaKafka.isEmpty() ? 20 : 5;
                    if (now - lastNew > TimeUnit.SECONDS.toNanos(quiet)) break;
                }
                ok(warmups[1] == 1, "the warm-up record was consumed %d times", warmups[1]);
                Set<TopicPartition> assigned = c.assignment();
                ok(assigned.size() == nShards, "the group member was assigned %d partitions, expected %d",
                        assigned.size(), nShards);
                c.commitSync();
                Map<TopicPartition, OffsetAndMetadata> committed = c.committed(assigned);
                Map<TopicPartition, Long> end = c.endOffsets(assigned);
                for (TopicPartition tp : assigned) {
                    OffsetAndMetadata om = committed.get(tp);
                    ok(om != null && om.offset() == end.get(tp), "%s: committed %s, end offset %d", tp, om, end.get(tp));
                }
            }
        });
        verifyReadBack("Kafka", viaKafka, puts, results, shards, allResults);
        check("Kafka and GetRecords agree record for record (per shard, same order)", () -> {
            ok(viaKafka.size() == viaGet.size(), "Kafka %d records, GetRecords %d", viaKafka.size(), viaGet.size());
            Map<Integer, List<String>> a = new TreeMap<>(), b = new TreeMap<>();
            for (Got g : viaKafka) a.computeIfAbsent(g.shard(), k -> new ArrayList<>()).add(g.key() + "=" + str(g.data()));
            for (Got g : viaGet) b.computeIfAbsent(g.shard(), k -> new ArrayList<>()).add(g.key() + "=" + str(g.data()));
            ok(a.equals(b), "per-shard sequences differ");
        });

        // ---- strait's split of an aggregate, with the bytes known: order, keys, explicit hash keys, bad digest
        check("hand-made aggregate (300 user records, 7 keys, explicit hash keys): split in order into the outer record's shard", () -> {
            List<String> pks = List.of("hk-a", "hk-b", "hk-c", "hk-d", "hk-e", "hk-f", "hk-g");
            List<String> ehks = List.of("0", MAX_HASH.toString());
            List<byte[]> recs = new ArrayList<>();
            List<String> wantKeys = new ArrayList<>();
            List<String> wantData = new ArrayList<>();
            for (int i = 0; i < 300; i++) {
                int k = (i * 7919) % pks.size();
                String data = String.format("hand-%03d-%s", i, pks.get(k));
                Integer ehk = i % 10 == 0 ? (i / 10) % 2 : null;
                recs.add(userRecord(k, ehk, data.getBytes(StandardCharsets.UTF_8)));
                wantKeys.add(pks.get(k));
                wantData.add(data);
            }
            byte[] blob = aggregate(pks, ehks, recs, false);
            var r = kc.putRecord(b -> b.streamName(stream).partitionKey("outer-key")
                    .data(software.amazon.awssdk.core.SdkBytes.fromByteArray(blob)));
            int sh = -1;
            for (int i = 0; i < shards.size(); i++) if (shards.get(i).shardId().equals(r.shardId())) sh = i;
            ok(sh == shardIndexFor("outer-key", shards), "response ShardId %s is not the outer key's shard", r.shardId());
            List<Got> all = readShardAfter(kc, stream, r.shardId(), r.sequenceNumber(), sh);
            List<String> keys = new ArrayList<>(), datas = new ArrayList<>();
            for (Got g : all) {
                if (!str(g.data()).startsWith("hand-")) continue;
                keys.add(g.key());
                datas.add(new String(g.data(), StandardCharsets.UTF_8));
            }
            ok(datas.equals(wantData), "user records read back %d, in order: %s; first read %s", datas.size(),
                    datas.size() == wantData.size(), datas.isEmpty() ? "-" : datas.get(0));
            ok(keys.equals(wantKeys), "partition keys differ from the aggregate's");
            ok(all.get(0).pos().equals(r.sequenceNumber()), "PutRecord answered %s, first user record at %s",
                    r.sequenceNumber(), all.get(0).pos());
        });
        check("hand-made aggregate with a wrong MD5: stored as the one plain record it is", () -> {
            byte[] blob = aggregate(List.of("bad-md5"), List.of(),
                    List.of(userRecord(0, null, "x".getBytes(StandardCharsets.UTF_8))), true);
            var r = kc.putRecord(b -> b.streamName(stream).partitionKey("bad-md5-outer")
                    .data(software.amazon.awssdk.core.SdkBytes.fromByteArray(blob)));
            int sh = shardIndexFor("bad-md5-outer", shards);
            List<Got> all = readShardAfter(kc, stream, r.shardId(), r.sequenceNumber(), sh);
            ok(all.size() == 1, "%d records from that put", all.size());
            ok(Arrays.equals(blob, all.get(0).data()), "stored bytes differ from the put");
            ok("bad-md5-outer".equals(all.get(0).key()), "key %s", all.get(0).key());
        });

        // ---- the certificate check is real: the same producer without the CA must not get through
        if (tls && !ca.isEmpty()) {
            check("KPL: with VerifyCertificate=true and no CaCertFile, strait's self-signed cert is refused", () -> {
                KinesisProducerConfiguration bad = new KinesisProducerConfiguration()
                        .setRegion("us-east-1")
                        .setCredentialsProvider(StaticCredentialsProvider.create(
                                AwsBasicCredentials.create("AKIASTRAITKPL0000000", "strait-kpl-dummy-secret")))
                        .setKinesisEndpoint(endpoint.getHost())
                        .setKinesisPort(endpoint.getPort())
                        .setVerifyCertificate(true)
                        .setRecordTtl(3_000)
                        .setRequestTimeout(2_000)
                        .setMetricsLevel("none")
                        .setCloudwatchEndpoint("localhost")
                        .setCloudwatchPort(9)
                        .setStsEndpoint("localhost")
                        .setStsPort(9)
                        .setLogLevel("error")
                        .setTempDirectory(env("KPL_TEMP_DIR", System.getProperty("java.io.tmpdir")));
                KinesisProducer p = new KinesisProducer(bad);
                try {
                    ListenableFuture<UserRecordResult> f = p.addUserRecord(stream, "untrusted",
                            ByteBuffer.wrap("must-not-arrive".getBytes(StandardCharsets.UTF_8)));
                    p.flush();
                    try {
                        UserRecordResult r = f.get(30, TimeUnit.SECONDS);
                        throw new AssertionError("the put succeeded without trusting the CA: " + r.getShardId());
                    } catch (java.util.concurrent.ExecutionException e) {
                        System.out.println("#   refused as expected: " + describeFailure(e.getCause()));
                    }
                } finally {
                    p.destroy();
                }
            });
        }

        finish(kc, stream);
    }

    /** The checks shared by both read paths. */
    static void verifyReadBack(String via, List<Got> got, List<Put> puts, List<UserRecordResult> results,
                               List<Shard> shards, boolean allResults) {
        int n = puts.size();
        Map<String, Integer> byData = new HashMap<>();
        for (Put p : puts) byData.put(str(p.data()), p.idx());
        check(via + ": exactly the " + n + " user records, no duplicates, no extras", () -> {
            Set<String> seen = new HashSet<>();
            int dups = 0, extras = 0;
            for (Got g : got) {
                String d = str(g.data());
                if (!seen.add(d)) dups++;
                if (!byData.containsKey(d)) extras++;
            }
            int missing = 0;
            for (String d : byData.keySet()) if (!seen.contains(d)) missing++;
            ok(got.size() == n && dups == 0 && extras == 0 && missing == 0,
                    "%d records read: %d duplicates, %d not put (first: %s), %d missing", got.size(), dups, extras,
                    got.stream().filter(g -> !byData.containsKey(str(g.data()))).findFirst().map(g -> hexHead(g.data())).orElse("-"),
                    missing);
        });
        check(via + ": plain records (no KPL magic prefix), key = user partition key, value = user data", () -> {
            int magic = 0, badKey = 0;
            String first = null;
            for (Got g : got) {
                if (startsWithMagic(g.data())) magic++;
                Integer i = byData.get(str(g.data()));
                if (i != null && !puts.get(i).key().equals(g.key())) {
                    badKey++;
                    if (first == null) first = "record " + i + " has key " + g.key() + ", put with " + puts.get(i).key();
                }
            }
            ok(magic == 0, "%d records still start with F3899AC2 (not deaggregated)", magic);
            ok(badKey == 0, "%d records have the wrong key; first: %s", badKey, first);
        });
        check(via + ": each record is in the shard the KPL reported for it", () -> {
            ok(allResults, "blocked: no KPL results");
            int wrong = 0;
            String first = null;
            for (Got g : got) {
                Integer i = byData.get(str(g.data()));
                if (i == null) continue;
                String want = results.get(i).getShardId();
                if (!shards.get(g.shard()).shardId().equals(want)) {
                    wrong++;
                    if (first == null) first = "record " + i + " in " + shards.get(g.shard()).shardId() + ", KPL said " + want;
                }
            }
            ok(wrong == 0, "%d records in another shard; first: %s", wrong, first);
        });
        check(via + ": per key, user records come in the order of their Kinesis records (acknowledged sequence numbers)", () -> {
            // The KPL's daemon may place a key's user records into an aggregate in another order than they were
            // added (it handles puts on several threads), so the order inside one aggregate is not known here;
            // the order of the aggregates is: a key's records from an earlier-acknowledged Kinesis record must
            // never come after those of a later one. (The order inside an aggregate is checked with a
            // hand-made aggregate below.)
            ok(allResults, "blocked: no KPL results");
            Map<String, BigInteger> lastAck = new HashMap<>();
            int bad = 0;
            String first = null;
            for (Got g : got) {
                Integer i = byData.get(str(g.data()));
                if (i == null) continue;
                BigInteger ack = new BigInteger(results.get(i).getSequenceNumber());
                BigInteger prev = lastAck.put(puts.get(i).key(), ack);
                if (prev != null && ack.compareTo(prev) < 0) {
                    bad++;
                    if (first == null) first = "record " + i + " (key " + puts.get(i).key() + ", acknowledged " + ack
                            + ") read after one acknowledged " + prev;
                }
            }
            ok(bad == 0, "%d records out of order; first: %s", bad, first);
        });
    }

    static void finish(KinesisClient kc, String stream) {
        if (stream != null) {
            try {
                kc.deleteStream(b -> b.streamName(stream).enforceConsumerDeletion(true));
            } catch (RuntimeException e) {
                System.out.println("# cleanup: DeleteStream failed: " + e);
            }
        }
        kc.close();
        if (!failed.isEmpty()) {
            System.out.println("FAILED CHECKS:");
            for (String f : failed) System.out.println("  - " + f);
        }
        System.out.printf("kpl: %d passed, %d failed%n", passed, failed.size());
        System.out.flush();
        System.exit(failed.isEmpty() ? 0 : 1);
    }

    // ------------------------------------------------------------------ helpers

    static TrustManager[] trustManagers(Path pem) throws Exception {
        KeyStore ks = KeyStore.getInstance(KeyStore.getDefaultType());
        ks.load(null, null);
        Collection<? extends Certificate> certs;
        try (InputStream in = new FileInputStream(pem.toFile())) {
            certs = CertificateFactory.getInstance("X.509").generateCertificates(in);
        }
        int i = 0;
        for (Certificate c : certs) ks.setCertificateEntry("strait-" + i++, c);
        if (i == 0) throw new IllegalArgumentException("no certificate in " + pem);
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(ks);
        return tmf.getTrustManagers();
    }

    /** Index (in ListShards order) of the open shard whose hash range holds MD5(key). */
    static int shardIndexFor(String key, List<Shard> shards) throws Exception {
        BigInteger h = new BigInteger(1, MessageDigest.getInstance("MD5").digest(key.getBytes(StandardCharsets.UTF_8)));
        for (int i = 0; i < shards.size(); i++) {
            Shard s = shards.get(i);
            if (s.sequenceNumberRange().endingSequenceNumber() != null) continue;
            BigInteger lo = new BigInteger(s.hashKeyRange().startingHashKey());
            BigInteger hi = new BigInteger(s.hashKeyRange().endingHashKey());
            if (h.compareTo(lo) >= 0 && h.compareTo(hi) <= 0) return i;
        }
        throw new IllegalStateException("no shard owns " + key);
    }

    static final BigInteger MAX_HASH = BigInteger.ONE.shiftLeft(128).subtract(BigInteger.ONE);

    /** The records of one shard from AT_SEQUENCE_NUMBER seq until caught up. */
    static List<Got> readShardAfter(KinesisClient kc, String stream, String shardId, String seq, int idx) {
        List<Got> out = new ArrayList<>();
        String it = kc.getShardIterator(b -> b.streamName(stream).shardId(shardId)
                .shardIteratorType(ShardIteratorType.AT_SEQUENCE_NUMBER).startingSequenceNumber(seq)).shardIterator();
        while (it != null) {
            String cur = it;
            GetRecordsResponse r = kc.getRecords(b -> b.shardIterator(cur).limit(1000));
            for (Record rec : r.records()) out.add(new Got(idx, rec.sequenceNumber(), rec.partitionKey(), rec.data().asByteArray()));
            if (r.records().isEmpty()) break;
            it = r.nextShardIterator();
        }
        return out;
    }

    // The KPL aggregation format: magic, protobuf AggregatedRecord, MD5 of the protobuf bytes.
    //   AggregatedRecord { repeated string partition_key_table = 1; repeated string explicit_hash_key_table = 2;
    //                      repeated Record records = 3; }
    //   Record { required uint64 partition_key_index = 1; optional uint64 explicit_hash_key_index = 2;
    //            required bytes data = 3; }

    static byte[] userRecord(int pkIndex, Integer ehkIndex, byte[] data) {
        java.io.ByteArrayOutputStream o = new java.io.ByteArrayOutputStream();
        o.write(0x08);
        varint(o, pkIndex);
        if (ehkIndex != null) {
            o.write(0x10);
            varint(o, ehkIndex);
        }
        lenField(o, 0x1A, data);
        return o.toByteArray();
    }

    static byte[] aggregate(List<String> pks, List<String> ehks, List<byte[]> records, boolean corruptDigest) throws Exception {
        java.io.ByteArrayOutputStream o = new java.io.ByteArrayOutputStream();
        for (String pk : pks) lenField(o, 0x0A, pk.getBytes(StandardCharsets.UTF_8));
        for (String h : ehks) lenField(o, 0x12, h.getBytes(StandardCharsets.UTF_8));
        for (byte[] r : records) lenField(o, 0x1A, r);
        byte[] body = o.toByteArray();
        byte[] md5 = MessageDigest.getInstance("MD5").digest(body);
        if (corruptDigest) md5[0] ^= 0x01;
        java.io.ByteArrayOutputStream out = new java.io.ByteArrayOutputStream();
        out.writeBytes(KPL_MAGIC);
        out.writeBytes(body);
        out.writeBytes(md5);
        return out.toByteArray();
    }

    static void lenField(java.io.ByteArrayOutputStream o, int tag, byte[] v) {
        o.write(tag);
        varint(o, v.length);
        o.writeBytes(v);
    }

    static void varint(java.io.ByteArrayOutputStream o, long v) {
        while ((v & ~0x7FL) != 0) {
            o.write((int) ((v & 0x7F) | 0x80));
            v >>>= 7;
        }
        o.write((int) v);
    }

    static boolean startsWithMagic(byte[] d) {
        return d.length >= 4 && Arrays.equals(Arrays.copyOf(d, 4), KPL_MAGIC);
    }

    static String str(byte[] b) {
        return new String(b, StandardCharsets.ISO_8859_1);
    }

    static String hexHead(byte[] b) {
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < Math.min(12, b.length); i++) sb.append(String.format("%02x", b[i]));
        return sb + (b.length > 12 ? "..(" + b.length + " bytes)" : "");
    }

    static String head(List<Integer> l) {
        return l.size() <= 8 ? l.toString() : l.subList(0, 8) + "..(" + l.size() + ")";
    }

    static String describeFailure(Throwable t) {
        if (t instanceof software.amazon.kinesis.producer.UserRecordFailedException f && f.getResult() != null) {
            List<String> as = new ArrayList<>();
            for (Attempt a : f.getResult().getAttempts()) as.add(a.getErrorCode() + ": " + a.getErrorMessage());
            Map<String, Integer> byError = new LinkedHashMap<>();
            for (String a : as) byError.merge(a, 1, Integer::sum);
            return as.size() + " attempts, by error: " + byError;
        }
        return String.valueOf(t);
    }
}
