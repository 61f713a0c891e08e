package strait.kclinterop;

import java.util.List;

import software.amazon.kinesis.exceptions.ShutdownException;
import software.amazon.kinesis.lifecycle.events.InitializationInput;
import software.amazon.kinesis.lifecycle.events.LeaseLostInput;
import software.amazon.kinesis.lifecycle.events.ProcessRecordsInput;
import software.amazon.kinesis.lifecycle.events.ShardEndedInput;
import software.amazon.kinesis.lifecycle.events.ShutdownRequestedInput;
import software.amazon.kinesis.processor.RecordProcessorCheckpointer;
import software.amazon.kinesis.processor.ShardRecordProcessor;
import software.amazon.kinesis.retrieval.KinesisClientRecord;

/**
 * Records every record it gets into the scenario's {@link Collector} and checkpoints after every batch, at
 * shard end and when a graceful shutdown asks it to.
 */
final class Processor implements ShardRecordProcessor {
    private final String worker;
    private final Collector collector;
    private String shardId = "?";
    private String lastPosition;

    Processor(String worker, Collector collector) {
        this.worker = worker;
        this.collector = collector;
    }

    @Override
    public void initialize(InitializationInput in) {
        shardId = in.shardId();
        collector.event(worker + " initialize " + shardId + " at " + in.extendedSequenceNumber());
    }

    @Override
    public void processRecords(ProcessRecordsInput in) {
        List<KinesisClientRecord> records = in.records();
        if (records.isEmpty()) return;
        for (KinesisClientRecord r : records) {
            collector.add(worker, shardId, r);
        }
        KinesisClientRecord last = records.get(records.size() - 1);
        lastPosition = last.sequenceNumber();
        checkpoint(in.checkpointer(), lastPosition, "batch");
    }

    private void checkpoint(RecordProcessorCheckpointer cp, String position, String why) {
        try {
            cp.checkpoint();
            collector.checkpointed(worker, shardId, position);
        } catch (ShutdownException e) {
            collector.event(worker + " checkpoint (" + why + ") on " + shardId + " after lease loss: " + e.getMessage());
        } catch (Exception e) {
            collector.error(worker + " checkpoint (" + why + ") on " + shardId + " failed: " + e);
        }
    }

    @Override
    public void leaseLost(LeaseLostInput in) {
        collector.event(worker + " leaseLost " + shardId);
    }

    @Override
    public void shardEnded(ShardEndedInput in) {
        collector.event(worker + " shardEnded " + shardId);
        checkpoint(in.checkpointer(), "SHARD_END", "shard end");
    }

    @Override
    public void shutdownRequested(ShutdownRequestedInput in) {
        collector.event(worker + " shutdownRequested " + shardId);
        if (lastPosition != null) checkpoint(in.checkpointer(), lastPosition, "shutdown");
    }
}
