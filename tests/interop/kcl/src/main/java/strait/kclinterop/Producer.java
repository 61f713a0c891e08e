package strait.kclinterop;

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.ToIntFunction;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.StringSerializer;

import software.amazon.awssdk.core.SdkBytes;
import software.amazon.awssdk.services.kinesis.model.PutRecordsRequestEntry;
import software.amazon.awssdk.services.kinesis.model.PutRecordsResponse;
import software.amazon.awssdk.services.kinesis.model.PutRecordsResultEntry;

/**
 * Writes a scenario's records through Kinesis PutRecords and a Kafka producer, numbering each key's records in
 * write order (batches are serialized and each is acknowledged before the next one is sent, so the counter order
 * is the write order, also when several threads write).
 */
final class Producer implements AutoCloseable {
    /** One record that was acknowledged by strait. */
    record Sent(String id, String key, int counter, String source, String phase, String shardId, BigInteger seq) {}

    private final Env env;
    private final String stream;
    private final String prefix;
    private final Map<String, Integer> counters = new HashMap<>();
    private final Map<String, Sent> lastByKey = new HashMap<>();
    private final List<Sent> sent = new ArrayList<>();
    private final List<String> problems = new ArrayList<>();
    private KafkaProducer<String, String> kafka;
    private int nextId;

    Producer(Env env, String stream, String prefix) {
        this.env = env;
        this.stream = stream;
        this.prefix = prefix;
    }

    static List<String> keys(int n) {
        List<String> keys = new ArrayList<>();
        for (int i = 0; i < n; i++) keys.add(String.format("key-%02d", i));
        return keys;
    }

    /** {@code count} keys starting at {@code from}, cycling over {@code keys}. */
    static List<String> cycle(List<String> keys, int from, int count) {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < count; i++) out.add(keys.get((from + i) % keys.size()));
        return out;
    }

    synchronized List<Sent> sent() { return new ArrayList<>(sent); }
    synchronized int sentCount() { return sent.size(); }
    synchronized List<String> problems() { return new ArrayList<>(problems); }

    private synchronized String nextId(String source) {
        return prefix + "-" + source.charAt(0) + "-" + (nextId++);
    }

    private synchronized int nextCounter(String key) {
        int c = counters.getOrDefault(key, 0);
        counters.put(key, c + 1);
        return c;
    }

    private synchronized void acknowledged(Sent s) {
        Sent prev = lastByKey.get(s.key());
        if (prev != null && prev.source().equals(s.source()) && prev.shardId().equals(s.shardId()) && prev.seq().compareTo(s.seq()) >= 0) {
            problems.add("key " + s.key() + ": " + s.id() + " got sequence number " + s.seq() + " on " + s.shardId()
                + ", not above " + prev.id() + "'s " + prev.seq());
        }
        lastByKey.put(s.key(), s);
        sent.add(s);
    }

    /** One PutRecords call with one record per entry of {@code keys}, in that order. Throws if any record failed. */
    synchronized void kinesis(List<String> keys, String phase) {
        List<PutRecordsRequestEntry> entries = new ArrayList<>();
        List<String[]> meta = new ArrayList<>();
        for (String key : keys) {
            String id = nextId("kinesis");
            int c = nextCounter(key);
            entries.add(PutRecordsRequestEntry.builder().partitionKey(key)
                .data(SdkBytes.fromString(Payload.make(id, key, c, "kinesis"), StandardCharsets.UTF_8)).build());
            meta.add(new String[] {id, key, Integer.toString(c)});
        }
        PutRecordsResponse resp = env.admin.putRecords(b -> b.streamName(stream).records(entries)).join();
        if (resp.failedRecordCount() != null && resp.failedRecordCount() > 0) {
            throw new AssertionError("PutRecords: " + resp.failedRecordCount() + " of " + entries.size() + " records failed, first: "
                + resp.records().stream().filter(r -> r.errorCode() != null).findFirst().map(PutRecordsResultEntry::errorMessage).orElse("?"));
        }
        for (int i = 0; i < entries.size(); i++) {
            PutRecordsResultEntry r = resp.records().get(i);
            String[] m = meta.get(i);
            acknowledged(new Sent(m[0], m[1], Integer.parseInt(m[2]), "kinesis", phase, r.shardId(), new BigInteger(r.sequenceNumber())));
        }
    }

    private KafkaProducer<String, String> kafka() {
        if (kafka == null) {
            Properties p = new Properties();
            p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, env.kafkaBootstrap);
            p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
            p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
            // the stream was created through Kinesis (kinesis-md5): route keys by MD5 hash range, as Kinesis does
            p.put(ProducerConfig.PARTITIONER_CLASS_CONFIG, Md5RangePartitioner.class.getName());
            p.put(ProducerConfig.ACKS_CONFIG, "all");
            p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
            p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
            p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
            p.put(ProducerConfig.CLIENT_ID_CONFIG, "kcl-interop-" + prefix);
            kafka = new KafkaProducer<>(p);
        }
        return kafka;
    }

    /**
     * Produces one record per entry of {@code keys} (key = the partition key as UTF-8, topic = the stream) and waits
     * for all acknowledgements. {@code partitionOf} picks the partition explicitly (after a reshard); null leaves it
     * to {@link Md5RangePartitioner}.
     */
    synchronized void kafka(List<String> keys, String phase, ToIntFunction<String> partitionOf) throws Exception {
        List<Future<RecordMetadata>> futures = new ArrayList<>();
        List<String[]> meta = new ArrayList<>();
        for (String key : keys) {
            String id = nextId("kafka");
            int c = nextCounter(key);
            String value = Payload.make(id, key, c, "kafka");
            ProducerRecord<String, String> rec = partitionOf == null
                ? new ProducerRecord<>(stream, key, value)
                : new ProducerRecord<>(stream, partitionOf.applyAsInt(key), key, value);
            futures.add(kafka().send(rec));
            meta.add(new String[] {id, key, Integer.toString(c)});
        }
        kafka().flush();
        for (int i = 0; i < futures.size(); i++) {
            RecordMetadata md = futures.get(i).get(60, TimeUnit.SECONDS);
            String[] m = meta.get(i);
            acknowledged(new Sent(m[0], m[1], Integer.parseInt(m[2]), "kafka", phase,
                String.format("shardId-%012d", md.partition()), BigInteger.valueOf(md.offset())));
        }
    }

    @Override
    public void close() {
        if (kafka != null) kafka.close();
    }
}
