package strait.kclinterop;

import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

import software.amazon.kinesis.retrieval.KinesisClientRecord;

/**
 * Everything the record processors of one scenario saw, in the order they saw it (one global order: appends
 * are synchronized, so for one key the order across a parent shard and its children is the order KCL delivered
 * them in).
 */
final class Collector {
    /** One record as a processor received it. */
    record Delivery(long index, String worker, String shardId, BigInteger seq, long subSeq, String partitionKey,
                    String id, String key, int counter, String source) {}

    /** A checkpoint call that returned without an exception. */
    record Checkpoint(String worker, String shardId, String position) {}

    private final List<Delivery> deliveries = new ArrayList<>();
    private final List<Checkpoint> checkpoints = new ArrayList<>();
    private final List<String> events = new ArrayList<>();
    private final List<String> errors = new ArrayList<>();

    synchronized void add(String worker, String shardId, KinesisClientRecord r) {
        ByteBuffer data = r.data().duplicate();
        byte[] bytes = new byte[data.remaining()];
        data.get(bytes);
        Map<String, String> f = Payload.parse(new String(bytes, StandardCharsets.UTF_8));
        int counter;
        try {
            counter = Integer.parseInt(f.getOrDefault("c", "-1"));
        } catch (NumberFormatException e) {
            counter = -1;
        }
        deliveries.add(new Delivery(deliveries.size(), worker, shardId, new BigInteger(r.sequenceNumber()),
            r.subSequenceNumber(), r.partitionKey(), f.get("id"), f.get("key"), counter, f.get("src")));
    }

    synchronized void checkpointed(String worker, String shardId, String position) {
        checkpoints.add(new Checkpoint(worker, shardId, position));
    }

    synchronized void event(String e) {
        events.add(e);
    }

    synchronized void error(String e) {
        errors.add(e);
    }

    synchronized List<Delivery> deliveries() { return new ArrayList<>(deliveries); }
    synchronized List<Checkpoint> checkpoints() { return new ArrayList<>(checkpoints); }
    synchronized List<String> events() { return new ArrayList<>(events); }
    synchronized List<String> errors() { return new ArrayList<>(errors); }

    synchronized int distinctIds() {
        return (int) deliveries.stream().map(Delivery::id).distinct().count();
    }

    synchronized int countFor(String worker) {
        return (int) deliveries.stream().filter(d -> d.worker().equals(worker)).count();
    }

    /** The last successful checkpoint of {@code worker} on each shard. */
    synchronized Map<String, String> lastCheckpoints(String worker) {
        Map<String, String> m = new HashMap<>();
        for (Checkpoint c : checkpoints) {
            if (c.worker().equals(worker)) m.put(c.shardId(), c.position());
        }
        return m;
    }
}
