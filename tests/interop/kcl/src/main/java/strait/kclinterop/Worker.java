package strait.kclinterop;

import java.util.List;
import java.util.concurrent.TimeUnit;

import software.amazon.awssdk.services.kinesis.KinesisAsyncClient;
import software.amazon.kinesis.common.ConfigsBuilder;
import software.amazon.kinesis.common.InitialPositionInStream;
import software.amazon.kinesis.common.InitialPositionInStreamExtended;
import software.amazon.kinesis.coordinator.CoordinatorConfig;
import software.amazon.kinesis.coordinator.Scheduler;
import software.amazon.kinesis.leases.LeaseManagementConfig;
import software.amazon.kinesis.metrics.MetricsConfig;
import software.amazon.kinesis.metrics.MetricsLevel;
import software.amazon.kinesis.metrics.NullMetricsFactory;
import software.amazon.kinesis.processor.SingleStreamTracker;
import software.amazon.kinesis.retrieval.RetrievalConfig;
import software.amazon.kinesis.retrieval.polling.PollingConfig;
import software.amazon.kinesis.worker.metric.OperatingRange;
import software.amazon.kinesis.worker.metric.impl.linux.LinuxCpuWorkerMetric;

/** One KCL 3.x consumer application worker (a Scheduler on its own thread). */
final class Worker {
    final String id;
    final OpCounter ops = new OpCounter();
    private final KinesisAsyncClient kinesis;
    private final Scheduler scheduler;
    private final Thread thread;

    Worker(Env env, String stream, String app, String id, Collector collector) {
        this.id = id;
        this.kinesis = env.kclKinesis(ops);
        ConfigsBuilder cb = new ConfigsBuilder(
            new SingleStreamTracker(stream, InitialPositionInStreamExtended.newInitialPosition(InitialPositionInStream.TRIM_HORIZON)),
            app, kinesis, env.dynamo, env.cloudWatch, id, () -> new Processor(id, collector));

        LeaseManagementConfig lease = cb.leaseManagementConfig()
            // a restarted application takes over a stopped worker's leases after this long
            .failoverTimeMillis(5_000)
            .shardSyncIntervalMillis(10_000)
            .dynamoDbLockBasedLeaderLeaseDurationInMillis(10_000)
            .dynamoDbLockBasedLeaderHeartbeatPeriodInMillis(2_000);
        // An explicit worker metric: the default list is chosen by probing ECS, EKS and the EC2 instance metadata
        // address, and this suite must only talk to loopback.
        lease.workerUtilizationAwareAssignmentConfig()
            .workerMetricList(List.of(new LinuxCpuWorkerMetric(OperatingRange.builder().maxUtilization(100).build())))
            .workerMetricsReporterFreqInMillis(5_000)
            .inMemoryWorkerMetricsCaptureFrequencyMillis(1_000);

        CoordinatorConfig coordinator = cb.coordinatorConfig()
            .parentShardPollIntervalMillis(1_000)
            .shardConsumerDispatchPollIntervalMillis(500);

        MetricsConfig metrics = cb.metricsConfig().metricsLevel(MetricsLevel.NONE).metricsFactory(new NullMetricsFactory());

        RetrievalConfig retrieval = cb.retrievalConfig();  // default: enhanced fan-out (SubscribeToShard)
        if (!env.fanout()) {
            retrieval.retrievalSpecificConfig(new PollingConfig(stream, kinesis).idleTimeBetweenReadsInMillis(200));
        }

        scheduler = new Scheduler(cb.checkpointConfig(), coordinator, lease, cb.lifecycleConfig(), metrics,
            cb.processorConfig(), retrieval);
        thread = new Thread(scheduler, "kcl-" + id);
        thread.setDaemon(true);
    }

    Worker start() {
        thread.start();
        return this;
    }

    /** Graceful shutdown (processors get shutdownRequested and checkpoint); true when it completed in time. */
    boolean stop() {
        boolean ok;
        try {
            ok = Boolean.TRUE.equals(scheduler.startGracefulShutdown().get(90, TimeUnit.SECONDS));
        } catch (Exception e) {
            System.out.println("# " + id + ": graceful shutdown failed: " + e);
            ok = false;
        }
        if (!ok) scheduler.shutdown();
        try {
            thread.join(30_000);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
        kinesis.close();
        System.out.println("# " + id + " calls to strait: " + ops.summary());
        for (String f : ops.failureSamples()) System.out.println("#   failed: " + f);
        return ok && !thread.isAlive();
    }
}
