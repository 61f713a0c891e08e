package strait.kclinterop;

import java.net.URI;
import java.time.Duration;

import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.AwsCredentialsProvider;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.http.nio.netty.NettyNioAsyncHttpClient;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.cloudwatch.CloudWatchAsyncClient;
import software.amazon.awssdk.services.dynamodb.DynamoDbAsyncClient;
import software.amazon.awssdk.services.kinesis.KinesisAsyncClient;
import software.amazon.kinesis.common.KinesisClientUtil;

/** Endpoints and the clients built from them. Static dummy credentials and an explicit region everywhere. */
final class Env {
    final String kinesisEndpoint = required("STRAIT_ENDPOINT");
    final String kafkaBootstrap = required("STRAIT_KAFKA");
    final String dynamoEndpoint = required("DYNAMODB_ENDPOINT");
    /** fanout (the suite) or polling (only to check the harness). */
    final String retrieval = System.getenv().getOrDefault("KCL_RETRIEVAL", "fanout");
    /** strait's kinesis.subscription_lifetime_secs when run.sh started it (0: unknown). */
    final int subscriptionLifetimeSecs = Integer.parseInt(System.getenv().getOrDefault("KCL_SUBSCRIPTION_LIFETIME_SECS", "0"));
    /** Records the basic scenario writes through Kafka in each of its 4 rounds (KCL_KAFKA_PER_ROUND, default 250). */
    final int kafkaPerRound = Integer.parseInt(System.getenv().getOrDefault("KCL_KAFKA_PER_ROUND", "250"));
    final Region region = Region.US_EAST_1;
    final AwsCredentialsProvider creds = StaticCredentialsProvider.create(AwsBasicCredentials.create("AKIDSTRAITKCL", "secret"));
    final String runTag = Long.toString(System.currentTimeMillis() % 100_000_000L, 36);

    /** For the test driver itself (create streams, put records, split): not counted. */
    final KinesisAsyncClient admin;
    final DynamoDbAsyncClient dynamo;
    /** KCL publishes no metrics here (MetricsLevel.NONE); the endpoint is a closed loopback port. */
    final CloudWatchAsyncClient cloudWatch;

    Env() {
        admin = KinesisAsyncClient.builder()
            .endpointOverride(URI.create(kinesisEndpoint)).region(region).credentialsProvider(creds)
            .httpClientBuilder(NettyNioAsyncHttpClient.builder())
            .overrideConfiguration(o -> o.apiCallTimeout(Duration.ofSeconds(60)))
            .build();
        dynamo = DynamoDbAsyncClient.builder()
            .endpointOverride(URI.create(dynamoEndpoint)).region(region).credentialsProvider(creds)
            .httpClientBuilder(NettyNioAsyncHttpClient.builder())
            .build();
        cloudWatch = CloudWatchAsyncClient.builder()
            .endpointOverride(URI.create("http://127.0.0.1:9")).region(region).credentialsProvider(creds)
            .httpClientBuilder(NettyNioAsyncHttpClient.builder())
            .build();
    }

    /** The Kinesis client a KCL worker uses: KinesisClientUtil's HTTP/2 Netty setup, pointed at strait. */
    KinesisAsyncClient kclKinesis(OpCounter counter) {
        return KinesisClientUtil.createKinesisAsyncClient(KinesisAsyncClient.builder()
            .endpointOverride(URI.create(kinesisEndpoint)).region(region).credentialsProvider(creds)
            .overrideConfiguration(o -> o.addExecutionInterceptor(counter)));
    }

    boolean fanout() {
        return !"polling".equals(retrieval);
    }

    private static String required(String name) {
        String v = System.getenv(name);
        if (v == null || v.isBlank()) throw new IllegalStateException(name + " is not set");
        return v;
    }

    void close() {
        admin.close();
        dynamo.close();
        cloudWatch.close();
    }
}
