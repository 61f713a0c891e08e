package strait.kclinterop;

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ThreadLocalRandom;

import org.apache.kafka.clients.producer.Partitioner;
import org.apache.kafka.common.Cluster;
import org.apache.kafka.common.PartitionInfo;

/**
 * A Kafka producer partitioner that routes keys the way Kinesis Data Streams routes partition keys, for
 * writing with a Kafka client to a strait stream that was created through the Kinesis API (key hash
 * {@code kinesis-md5}).
 *
 * <p>Kinesis maps a partition key to a 128-bit hash key, {@code md5(utf8(partitionKey))} read as an unsigned
 * big-endian integer, and the record goes to the shard whose {@code HashKeyRange} contains it. strait's shard N is
 * Kafka partition N, and a stream created with N shards splits {@code [0, 2^128-1]} evenly: shard {@code i} owns
 * {@code [i * floor(2^128 / N), (i+1) * floor(2^128 / N) - 1]}, and the last shard ends at {@code 2^128 - 1}. With
 * this partitioner a Kafka record with key K lands on the same partition as a Kinesis {@code PutRecord} with
 * {@code PartitionKey} K, so per-key order holds across both APIs and Kinesis readers (KCL) find records where
 * the advertised hash ranges say they are.
 *
 * <p>Usage: {@code props.put(ProducerConfig.PARTITIONER_CLASS_CONFIG, Md5RangePartitioner.class.getName())} with
 * a key serializer that writes the key as UTF-8 (for example {@code StringSerializer}); the hash is taken over the
 * serialized key bytes, which is what Kinesis sees as the partition key.
 *
 * <p>Records without a key are spread over the available partitions at random (Kinesis readers see the
 * partition number as their partition key).
 *
 * <p>Limits: the even split only describes a stream that was never resharded. After {@code SplitShard},
 * {@code MergeShards} or {@code UpdateShardCount} the open shards' ranges are no longer an even split of the
 * partition count; take the ranges from {@code ListShards} instead (see {@link #partitionForRanges}).
 */
public class Md5RangePartitioner implements Partitioner {
    /** 2^128, one past the largest hash key. */
    public static final BigInteger HASH_SPACE = BigInteger.ONE.shiftLeft(128);

    @Override
    public void configure(Map<String, ?> configs) {
    }

    @Override
    public int partition(String topic, Object key, byte[] keyBytes, Object value, byte[] valueBytes, Cluster cluster) {
        if (keyBytes == null) {
            List<PartitionInfo> available = cluster.availablePartitionsForTopic(topic);
            if (available.isEmpty()) {
                available = cluster.partitionsForTopic(topic);
            }
            return available.get(ThreadLocalRandom.current().nextInt(available.size())).partition();
        }
        Integer count = cluster.partitionCountForTopic(topic);
        if (count == null || count <= 0) {
            throw new IllegalStateException("no partition count known for topic " + topic);
        }
        return partitionFor(hashKey(keyBytes), count);
    }

    @Override
    public void close() {
    }

    /** Kinesis's hash key of a partition key: md5 of its UTF-8 bytes as an unsigned 128-bit big-endian integer. */
    public static BigInteger hashKey(String partitionKey) {
        return hashKey(partitionKey.getBytes(StandardCharsets.UTF_8));
    }

    /** The hash key of already-encoded partition key bytes. */
    public static BigInteger hashKey(byte[] keyBytes) {
        try {
            return new BigInteger(1, MessageDigest.getInstance("MD5").digest(keyBytes));
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("MD5 is not available", e);
        }
    }

    /** The partition (0..partitions-1) whose even-split range contains {@code hashKey}. */
    public static int partitionFor(BigInteger hashKey, int partitions) {
        BigInteger step = HASH_SPACE.divide(BigInteger.valueOf(partitions));
        return Math.min(hashKey.divide(step).intValue(), partitions - 1);
    }

    /** First hash key of partition {@code i} of an even split over {@code partitions}. */
    public static BigInteger rangeStart(int i, int partitions) {
        return HASH_SPACE.divide(BigInteger.valueOf(partitions)).multiply(BigInteger.valueOf(i));
    }

    /** Last hash key (inclusive) of partition {@code i} of an even split over {@code partitions}. */
    public static BigInteger rangeEnd(int i, int partitions) {
        return i == partitions - 1 ? HASH_SPACE.subtract(BigInteger.ONE) : rangeStart(i + 1, partitions).subtract(BigInteger.ONE);
    }

    /**
     * For resharded streams: the index in {@code starts}/{@code ends} (inclusive hash-key ranges of the open shards,
     * as ListShards reports them) that contains {@code hashKey}, or -1.
     */
    public static int partitionForRanges(BigInteger hashKey, List<BigInteger> starts, List<BigInteger> ends) {
        for (int i = 0; i < starts.size(); i++) {
            if (hashKey.compareTo(starts.get(i)) >= 0 && hashKey.compareTo(ends.get(i)) <= 0) {
                return i;
            }
        }
        return -1;
    }
}
