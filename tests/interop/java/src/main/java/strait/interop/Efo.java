package strait.interop;

import static strait.interop.Harness.eq;
import static strait.interop.Harness.expectError;
import static strait.interop.Harness.need;
import static strait.interop.Harness.ok;

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.function.BooleanSupplier;
import java.util.regex.Pattern;
import java.util.stream.Collectors;

import org.reactivestreams.Subscriber;
import org.reactivestreams.Subscription;

import software.amazon.awssdk.core.SdkBytes;
import software.amazon.awssdk.services.kinesis.KinesisAsyncClient;
import software.amazon.awssdk.services.kinesis.KinesisClient;
import software.amazon.awssdk.services.kinesis.model.*;
import software.amazon.awssdk.services.kinesis.model.Record;

/**
 * Enhanced fan-out over the async Netty client (HTTP/2: h2c prior knowledge or TLS+ALPN): consumer
 * registration, SubscribeToShard event streams (initial response, live records, continuation sequence
 * numbers, the 5-second rule and takeover, the end of a closed shard), deregistration.
 */
final class Efo {
    private final KinesisClient kc;
    private final KinesisAsyncClient async;
    private final Harness h;
    private final EventStreamTap tap;
    private final Main.WireRecorder wire;
    private final boolean cbor;
    private final String stream;
    private final String streamArn;
    private final Instant t0 = Instant.now().minusMillis(1500);

    /** What the suite wrote to the stream's single shard, in write order. */
    private final List<Suite.Put> puts = new ArrayList<>();
    private String shardId;
    private Consumer c1;
    private Consumer c2;

    Efo(KinesisClient kc, KinesisAsyncClient async, Harness h, EventStreamTap tap, Main.WireRecorder wire, boolean cbor,
        String transport) {
        this.wire = wire;
        this.kc = kc;
        this.async = async;
        this.h = h;
        this.tap = tap;
        this.cbor = cbor;
        this.stream = "jv-efo-" + (cbor ? "cbor" : "json") + "-" + transport + "-"
                + Long.toHexString(ThreadLocalRandom.current().nextLong() & 0xffffffffL);
        this.streamArn = Suite.arn(stream);
    }

    // ---------------------------------------------------------------- one subscription

    /** Collects everything one SubscribeToShard call delivers. */
    static final class Sub {
        final AtomicInteger order = new AtomicInteger();
        volatile int responseOrder = -1;   // when onResponse ran, relative to events
        volatile int firstEventOrder = -1;
        volatile SubscribeToShardResponse response;
        volatile long responseNanos;
        final List<SubscribeToShardEvent> events = new ArrayList<>();
        final List<String> otherEvents = new ArrayList<>();
        volatile Throwable error;
        volatile boolean completed;
        volatile Subscription subscription;
        CompletableFuture<Void> future;

        synchronized List<Record> records() {
            return events.stream().flatMap(e -> e.records().stream()).collect(Collectors.toList());
        }

        synchronized List<SubscribeToShardEvent> eventsCopy() { return new ArrayList<>(events); }

        void cancel() {
            Subscription s = subscription;
            if (s != null) s.cancel();
        }

        boolean ended() { return completed || error != null || (future != null && future.isDone()); }
    }

    private Sub subscribe(String consumerArn, String shard, StartingPosition start) {
        Sub sub = new Sub();
        SubscribeToShardResponseHandler handler = SubscribeToShardResponseHandler.builder()
                .onResponse(r -> {
                    sub.responseNanos = System.nanoTime();
                    sub.response = r;
                    sub.responseOrder = sub.order.getAndIncrement();
                })
                .onEventStream(publisher -> publisher.subscribe(new Subscriber<SubscribeToShardEventStream>() {
                    @Override public void onSubscribe(Subscription s) {
                        sub.subscription = s;
                        s.request(1);
                    }
                    @Override public void onNext(SubscribeToShardEventStream ev) {
                        synchronized (sub) {
                            if (sub.firstEventOrder < 0) sub.firstEventOrder = sub.order.getAndIncrement();
                            if (ev instanceof SubscribeToShardEvent e) sub.events.add(e);
                            else sub.otherEvents.add(String.valueOf(ev));
                        }
                        sub.subscription.request(1); // one at a time, like the KCL
                    }
                    @Override public void onError(Throwable t) { if (sub.error == null) sub.error = t; }
                    @Override public void onComplete() { sub.completed = true; }
                }))
                .onError(t -> { if (sub.error == null) sub.error = t; })
                .build();
        sub.future = async.subscribeToShard(b -> b.consumerARN(consumerArn).shardId(shard).startingPosition(start),
                handler);
        sub.future.whenComplete((v, t) -> { if (t != null && sub.error == null) sub.error = t; });
        return sub;
    }

    static void waitUntil(String what, long timeoutMs, BooleanSupplier cond) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.MILLISECONDS.toNanos(timeoutMs);
        while (!cond.getAsBoolean()) {
            if (System.nanoTime() > deadline) throw new AssertionError("timed out after " + timeoutMs + " ms: " + what);
            Thread.sleep(20);
        }
    }

    /** Harness.describe, null-safe. */
    static String descr(Throwable t) {
        return t == null ? "nothing (no error)" : Harness.describe(root(t));
    }

    static Throwable root(Throwable t) {
        while ((t instanceof ExecutionException || t instanceof java.util.concurrent.CompletionException
                || (t != null && t.getClass().getName().startsWith("software.amazon.awssdk.core.exception.SdkClientException")
                    && t.getCause() != null))
                && t.getCause() != null) {
            t = t.getCause();
        }
        return t;
    }

    private Suite.Put put(String pk, String payload) {
        byte[] data = payload.getBytes(StandardCharsets.UTF_8);
        PutRecordResponse r = kc.putRecord(b -> b.streamName(stream).partitionKey(pk).data(SdkBytes.fromByteArray(data)));
        Suite.Put p = new Suite.Put(r.shardId(), r.sequenceNumber(), pk, data);
        synchronized (puts) { puts.add(p); }
        return p;
    }

    private Map<String, String> tags(String arn) {
        Map<String, String> m = new TreeMap<>();
        for (Tag t : kc.listTagsForResource(b -> b.resourceARN(arn)).tags()) m.put(t.key(), t.value());
        return m;
    }

    /** Records vs puts: same sequence numbers, keys and bytes, same order. */
    static void sameRecords(List<Suite.Put> want, List<Record> got, String what) {
        List<String> w = want.stream().map(p -> p.seq() + "/" + p.pk() + "/" + new String(p.data(), StandardCharsets.UTF_8))
                .collect(Collectors.toList());
        List<String> g = got.stream().map(r -> r.sequenceNumber() + "/" + r.partitionKey() + "/" + r.data().asUtf8String())
                .collect(Collectors.toList());
        eq(w, g, what);
    }

    /** Checks of every event of a subscription on an open shard. */
    static void continuationInvariants(Sub sub) {
        BigInteger prev = null;
        for (SubscribeToShardEvent e : sub.eventsCopy()) {
            String c = e.continuationSequenceNumber();
            ok(c != null, "an event on an open shard has no ContinuationSequenceNumber: %s", e);
            BigInteger cn = new BigInteger(c);
            if (e.hasRecords() && !e.records().isEmpty()) {
                String last = e.records().get(e.records().size() - 1).sequenceNumber();
                eq(last, c, "ContinuationSequenceNumber of an event with records (= its last record's sequence number)");
            }
            ok(prev == null || cn.compareTo(prev) >= 0, "ContinuationSequenceNumber went back: %s after %s", cn, prev);
            prev = cn;
            ok(e.millisBehindLatest() != null && e.millisBehindLatest() >= 0, "MillisBehindLatest %s", e.millisBehindLatest());
        }
    }

    // ---------------------------------------------------------------- the checks

    void run() throws Exception {
        h.check("EFO: CreateStream (1 shard) for fan-out", () -> {
            kc.createStream(b -> b.streamName(stream).shardCount(1));
            waitUntil("stream ACTIVE", 20_000, () -> kc.describeStreamSummary(b -> b.streamName(stream))
                    .streamDescriptionSummary().streamStatus() == StreamStatus.ACTIVE);
            shardId = kc.listShards(b -> b.streamName(stream)).shards().get(0).shardId();
        });
        need(shardId, "EFO stream not created");
        for (int i = 0; i < 5; i++) put("pk-" + i, "before-subscribe-" + i);

        Pattern arnRe = Pattern.compile(Pattern.quote(streamArn + "/consumer/efo-one:") + "\\d+");
        h.check("EFO: RegisterStreamConsumer: ARN stream/NAME/consumer/NAME:EPOCH, status, timestamp", () -> {
            c1 = async.registerStreamConsumer(b -> b.streamARN(streamArn).consumerName("efo-one")).get(30, TimeUnit.SECONDS)
                    .consumer();
            ok(arnRe.matcher(c1.consumerARN()).matches(), "ConsumerARN %s", c1.consumerARN());
            eq("efo-one", c1.consumerName(), "ConsumerName");
            ok(c1.consumerStatus() == ConsumerStatus.CREATING || c1.consumerStatus() == ConsumerStatus.ACTIVE,
                    "status %s", c1.consumerStatusAsString());
            Instant ts = c1.consumerCreationTimestamp();
            ok(ts != null && !ts.isBefore(t0) && !ts.isAfter(Instant.now().plusSeconds(2)), "creation timestamp %s", ts);
            long epoch = Long.parseLong(c1.consumerARN().substring(c1.consumerARN().lastIndexOf(':') + 1));
            ok(Math.abs(epoch - ts.getEpochSecond()) <= 1, "ARN epoch %d vs creation timestamp %s", epoch, ts);
        });
        h.check("EFO: DescribeStreamConsumer reaches ACTIVE (by ConsumerARN, and by StreamARN + ConsumerName)", () -> {
            need(c1, "no consumer");
            waitUntil("consumer ACTIVE", 10_000, () -> kc.describeStreamConsumer(b -> b.consumerARN(c1.consumerARN()))
                    .consumerDescription().consumerStatus() == ConsumerStatus.ACTIVE);
            ConsumerDescription d = kc.describeStreamConsumer(b -> b.streamARN(streamArn).consumerName("efo-one"))
                    .consumerDescription();
            eq(c1.consumerARN(), d.consumerARN(), "ConsumerARN");
            eq(streamArn, d.streamARN(), "StreamARN");
            eq(ConsumerStatus.ACTIVE, d.consumerStatus(), "status");
            eq(c1.consumerCreationTimestamp(), d.consumerCreationTimestamp(), "creation timestamp");
        });
        h.check("EFO: second consumer; ListStreamConsumers lists both (MaxResults=1 + NextToken paging)", () -> {
            c2 = kc.registerStreamConsumer(b -> b.streamARN(streamArn).consumerName("efo-two")
                    .tags(Map.of("role", "second", "suite", "java"))).consumer();
            waitUntil("consumer 2 ACTIVE", 10_000, () -> kc.describeStreamConsumer(b -> b.consumerARN(c2.consumerARN()))
                    .consumerDescription().consumerStatus() == ConsumerStatus.ACTIVE);
            Map<String, String> all = new TreeMap<>();
            for (Consumer c : kc.listStreamConsumers(b -> b.streamARN(streamArn)).consumers()) {
                all.put(c.consumerName(), c.consumerARN() + " " + c.consumerStatusAsString());
            }
            eq(Map.of("efo-one", c1.consumerARN() + " ACTIVE", "efo-two", c2.consumerARN() + " ACTIVE"), all, "consumers");
            ListStreamConsumersResponse p1 = kc.listStreamConsumers(b -> b.streamARN(streamArn).maxResults(1));
            eq(1, p1.consumers().size(), "page 1 size");
            ok(p1.nextToken() != null, "no NextToken after page 1 of 2");
            // StreamARN is required on every page (the API model marks it required)
            ListStreamConsumersResponse p2 = kc.listStreamConsumers(b -> b.streamARN(streamArn).nextToken(p1.nextToken())
                    .maxResults(1));
            ok(p2.nextToken() == null, "NextToken after the last page: %s", p2.nextToken());
            eq(1, p2.consumers().size(), "page 2 size");
            ok(!p1.consumers().get(0).consumerName().equals(p2.consumers().get(0).consumerName()), "same consumer twice");
        });
        h.check("consumer tags: RegisterStreamConsumer Tags, then Tag/Untag/ListTagsForResource on the ConsumerARN", () -> {
            need(c2, "no second consumer");
            eq(Map.of("role", "second", "suite", "java"), tags(c2.consumerARN()), "tags from RegisterStreamConsumer");
            kc.tagResource(b -> b.resourceARN(c2.consumerARN()).tags(Map.of("extra", "1")));
            kc.untagResource(b -> b.resourceARN(c2.consumerARN()).tagKeys("suite"));
            eq(Map.of("role", "second", "extra", "1"), tags(c2.consumerARN()), "consumer tags after tag + untag");
            eq(Map.of(), tags(c1.consumerARN()), "tags of the untagged consumer");
            eq(Map.of(), tags(streamArn), "the stream's own tags (consumer tags must not leak to it)");
        });
        h.check("error: RegisterStreamConsumer with a taken name -> ResourceInUseException", () ->
                expectError(ResourceInUseException.class, "ResourceInUseException",
                        () -> kc.registerStreamConsumer(b -> b.streamARN(streamArn).consumerName("efo-one"))));
        h.check("error: RegisterStreamConsumer on an unknown stream -> ResourceNotFoundException", () ->
                expectError(ResourceNotFoundException.class, "ResourceNotFoundException",
                        () -> kc.registerStreamConsumer(b -> b.streamARN(streamArn + "-nope").consumerName("x"))));
        h.check("error: DescribeStreamConsumer unknown consumer -> ResourceNotFoundException", () ->
                expectError(ResourceNotFoundException.class, "ResourceNotFoundException",
                        () -> kc.describeStreamConsumer(b -> b.streamARN(streamArn).consumerName("nobody"))));
        need(c1, "no consumer registered");
        need(c2, "no second consumer registered");

        // ---- a live subscription from TRIM_HORIZON
        StartingPosition trim = StartingPosition.builder().type(ShardIteratorType.TRIM_HORIZON).build();
        Sub s1 = subscribe(c1.consumerARN(), shardId, trim);
        long s1Start = System.nanoTime();
        h.check("SubscribeToShard: initial response arrives before any event", () -> {
            waitUntil("initial response or error", 15_000, () -> s1.response != null || s1.error != null);
            ok(s1.error == null, "subscription failed: %s", descr(s1.error));
            waitUntil("first event", 15_000, () -> s1.firstEventOrder >= 0 || s1.ended());
            ok(s1.firstEventOrder > s1.responseOrder, "first event (#%d) before the initial response (#%d)",
                    s1.firstEventOrder, s1.responseOrder);
        });
        h.check("error: a second SubscribeToShard within 5 s on the same consumer and shard -> ResourceInUseException", () -> {
            ok(System.nanoTime() - s1Start < TimeUnit.SECONDS.toNanos(4), "too late to test the 5 s rule");
            Sub dup = subscribe(c1.consumerARN(), shardId, trim);
            waitUntil("the second subscription to fail", 10_000, () -> dup.error != null || dup.response != null);
            Throwable t = root(dup.error);
            ok(t instanceof ResourceInUseException, "expected ResourceInUseException, got %s",
                    t == null ? "a successful response" : Harness.describe(t));
            dup.cancel();
            ok(s1.error == null && !s1.ended(), "the first subscription ended: %s", s1.error);
        });
        h.check("SubscribeToShard: the records put before subscribing arrive in order", () -> {
            waitUntil("5 records", 15_000, () -> s1.records().size() >= 5 || s1.ended());
            sameRecords(puts, s1.records(), "records");
        });
        h.check("SubscribeToShard: records put after subscribing are pushed, in order, no duplicates", () -> {
            for (int i = 0; i < 5; i++) put("pk-" + i, "after-subscribe-" + i);
            waitUntil("10 records", 15_000, () -> s1.records().size() >= 10 || s1.ended());
            Thread.sleep(300); // anything extra would show up now
            sameRecords(puts, s1.records(), "records");
        });
        h.check("SubscribeToShard: ContinuationSequenceNumber = last record's sequence number, MillisBehindLatest set", () -> {
            ok(!s1.eventsCopy().isEmpty(), "no events");
            continuationInvariants(s1);
            List<SubscribeToShardEvent> evs = s1.eventsCopy();
            eq(puts.get(puts.size() - 1).seq(), evs.get(evs.size() - 1).continuationSequenceNumber(),
                    "last ContinuationSequenceNumber");
            ok(evs.stream().noneMatch(e -> e.hasChildShards() && !e.childShards().isEmpty()), "ChildShards on an open shard");
        });

        // ---- takeover after 5 s, resuming from the continuation
        String cont = s1.eventsCopy().isEmpty() ? null : s1.eventsCopy().get(s1.eventsCopy().size() - 1).continuationSequenceNumber();
        Sub[] s2 = new Sub[1];
        h.check("SubscribeToShard after 5 s takes over (AFTER_SEQUENCE_NUMBER = continuation); the old stream gets ResourceInUseException", () -> {
            need(cont, "no continuation from the first subscription");
            // 5.3 s after the initial response, which the server sent after it had started the subscription
            long wait = TimeUnit.NANOSECONDS.toMillis(s1.responseNanos + TimeUnit.MILLISECONDS.toNanos(5300) - System.nanoTime());
            if (wait > 0) Thread.sleep(wait);
            s2[0] = subscribe(c1.consumerARN(), shardId, StartingPosition.builder()
                    .type(ShardIteratorType.AFTER_SEQUENCE_NUMBER).sequenceNumber(cont).build());
            waitUntil("takeover", 10_000, () -> s2[0].response != null || s2[0].error != null);
            ok(s2[0].error == null, "newcomer failed: %s", descr(s2[0].error));
            waitUntil("the old subscription to end", 10_000, s1::ended);
            Throwable t = root(s1.error);
            ok(t instanceof ResourceInUseException, "old subscription ended with %s",
                    t == null ? "a clean completion" : Harness.describe(t));
        });
        s1.cancel();
        h.check("SubscribeToShard resumed after the continuation: only the new records, none replayed", () -> {
            need(s2[0], "no resumed subscription");
            int before = puts.size();
            for (int i = 0; i < 3; i++) put("pk-" + i, "after-takeover-" + i);
            waitUntil("3 records", 15_000, () -> s2[0].records().size() >= 3 || s2[0].ended());
            Thread.sleep(300);
            sameRecords(puts.subList(before, puts.size()), s2[0].records(), "records after the continuation");
            continuationInvariants(s2[0]);
        });

        // ---- the end of a closed shard
        List<String> children = new ArrayList<>();
        h.check("SplitShard closes the shard (setup for the closed-shard subscription)", () -> {
            kc.splitShard(b -> b.streamName(stream).shardToSplit(shardId)
                    .newStartingHashKey(BigInteger.ONE.shiftLeft(127).toString()));
            waitUntil("stream ACTIVE after the split", 20_000, () -> kc.describeStreamSummary(b -> b.streamName(stream))
                    .streamDescriptionSummary().streamStatus() == StreamStatus.ACTIVE);
            for (Shard s : kc.listShards(b -> b.streamName(stream)).shards()) {
                if (shardId.equals(s.parentShardId())) children.add(s.shardId());
            }
            eq(2, children.size(), "children of " + shardId);
        });
        h.check("SubscribeToShard live on a shard that gets closed: ends with ChildShards and a null continuation", () -> {
            Sub s = need(s2[0], "no live subscription");
            waitUntil("an event with ChildShards, or the end", 15_000, () -> s.eventsCopy().stream()
                    .anyMatch(e -> e.hasChildShards() && !e.childShards().isEmpty()) || s.ended());
            waitUntil("the subscription to end after ChildShards", 10_000, s::ended);
            checkClosedShardEnd(s, puts.subList(puts.size() - 3, puts.size()), children);
        });
        Sub s3 = subscribe(c2.consumerARN(), shardId, trim);
        h.check("SubscribeToShard on a closed shard: every record, then ChildShards, null continuation, clean end", () -> {
            waitUntil("the subscription to end", 20_000, s3::ended);
            ok(s3.error == null, "ended with an error: %s", descr(s3.error));
            ok(s3.response != null, "no initial response");
            checkClosedShardEnd(s3, puts, children);
        });
        s3.cancel();
        if (s2[0] != null) s2[0].cancel();
        h.check("error: SubscribeToShard with an unknown ConsumerARN -> ResourceNotFoundException", () -> {
            Sub s = subscribe(c1.consumerARN().replace("efo-one", "efo-nobody"), children.isEmpty() ? shardId : children.get(0), trim);
            waitUntil("an answer", 10_000, () -> s.error != null || s.response != null);
            Throwable t = root(s.error);
            ok(t instanceof ResourceNotFoundException, "expected ResourceNotFoundException, got %s",
                    t == null ? "a successful response" : Harness.describe(t));
            s.cancel();
        });

        // ---- the wire format of the event stream, as strait sent it
        h.check("event stream wire: content type, message headers, CRCs; payloads in the request's encoding", () -> {
            List<EventStreamTap.Message> ms = new ArrayList<>(tap.messages);
            ok(!ms.isEmpty(), "no event-stream message captured");
            ok(tap.framingErrors.isEmpty(), "framing errors: %s", tap.framingErrors);
            ok(tap.responseContentTypes.stream().allMatch(ct -> ct.startsWith("application/vnd.amazon.eventstream")),
                    "response Content-Types: %s", tap.responseContentTypes);
            Map<String, Integer> kinds = new TreeMap<>();
            for (EventStreamTap.Message m : ms) {
                ok(m.crcOk(), "bad CRC on a message with headers %s", m.headers());
                String key = m.header(":message-type") + "/" + (m.header(":event-type") != null ? m.header(":event-type")
                        : m.header(":exception-type")) + " content-type=" + m.header(":content-type") + " payload=" + m.payloadKind();
                kinds.merge(key, 1, Integer::sum);
            }
            Set<String> reqTypes = wire.requestTypesByOp.getOrDefault("SubscribeToShard", Set.of());
            System.out.printf("#   SubscribeToShard requests sent as %s (client CBOR switch %s); event-stream messages: %s%n",
                    reqTypes, cbor ? "on" : "off", kinds);
            eq(1, reqTypes.size(), "SubscribeToShard request content types");
            String want = reqTypes.iterator().next().contains("cbor") ? "cbor" : "json";
            for (EventStreamTap.Message m : ms) {
                if (m.payload().length == 0) continue;
                String ct = String.valueOf(m.header(":content-type"));
                String declared = ct.contains("cbor") ? "cbor" : ct.contains("json") ? "json" : ct;
                eq(declared, m.payloadKind(), "payload vs its :content-type header " + ct);
                eq(want, m.payloadKind(), "payload encoding of " + m.header(":message-type") + " "
                        + m.header(":event-type") + m.header(":exception-type") + " (request was " + reqTypes + ")");
            }
        });

        // ---- deregistration
        h.check("EFO: DeregisterStreamConsumer (by ConsumerARN, and by StreamARN + ConsumerName); list becomes empty", () -> {
            kc.deregisterStreamConsumer(b -> b.consumerARN(c1.consumerARN()));
            kc.deregisterStreamConsumer(b -> b.streamARN(streamArn).consumerName("efo-two"));
            try {
                ConsumerStatus st = kc.describeStreamConsumer(b -> b.consumerARN(c1.consumerARN()))
                        .consumerDescription().consumerStatus();
                eq(ConsumerStatus.DELETING, st, "status right after deregistering");
            } catch (ResourceNotFoundException gone) {
                // already gone: also fine
            }
            waitUntil("no consumers listed", 10_000, () -> kc.listStreamConsumers(b -> b.streamARN(streamArn)).consumers().isEmpty());
            expectError(ResourceNotFoundException.class, "ResourceNotFoundException",
                    () -> kc.describeStreamConsumer(b -> b.consumerARN(c1.consumerARN())));
        });
        h.check("EFO: DeleteStream", () -> kc.deleteStream(b -> b.streamName(stream).enforceConsumerDeletion(true)));
    }

    /** The records of a closed shard in order, then one event with ChildShards and no continuation. */
    private static void checkClosedShardEnd(Sub s, List<Suite.Put> want, List<String> children) {
        ok(s.error == null, "ended with an error: %s", descr(s.error));
        sameRecords(want, s.records(), "records");
        List<SubscribeToShardEvent> evs = s.eventsCopy();
        ok(!evs.isEmpty(), "no events");
        SubscribeToShardEvent last = evs.get(evs.size() - 1);
        ok(last.hasChildShards() && !last.childShards().isEmpty(), "last event has no ChildShards: %s", last);
        eq(null, last.continuationSequenceNumber(), "ContinuationSequenceNumber of the last event");
        List<String> got = last.childShards().stream().map(ChildShard::shardId).sorted().collect(Collectors.toList());
        eq(children.stream().sorted().collect(Collectors.toList()), got, "ChildShards");
        String parent = want.isEmpty() ? null : want.get(0).shardId();
        for (ChildShard c : last.childShards()) {
            if (parent != null) eq(List.of(parent), c.parentShards(), "ParentShards of " + c.shardId());
            ok(c.hashKeyRange() != null, "no HashKeyRange on %s", c.shardId());
        }
        for (int i = 0; i < evs.size() - 1; i++) {
            ok(!(evs.get(i).hasChildShards() && !evs.get(i).childShards().isEmpty()), "ChildShards before the last event");
        }
    }
}
