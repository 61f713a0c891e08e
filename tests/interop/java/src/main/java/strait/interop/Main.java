package strait.interop;

import java.io.InputStream;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.KeyStore;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.time.Duration;
import java.util.Locale;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.atomic.AtomicInteger;

import javax.net.ssl.TrustManager;
import javax.net.ssl.TrustManagerFactory;

import software.amazon.awssdk.auth.credentials.AwsBasicCredentials;
import software.amazon.awssdk.auth.credentials.StaticCredentialsProvider;
import software.amazon.awssdk.awscore.retry.AwsRetryStrategy;
import software.amazon.awssdk.core.client.config.ClientOverrideConfiguration;
import software.amazon.awssdk.core.interceptor.Context;
import software.amazon.awssdk.core.interceptor.ExecutionAttribute;
import software.amazon.awssdk.core.interceptor.ExecutionAttributes;
import software.amazon.awssdk.core.interceptor.ExecutionInterceptor;
import software.amazon.awssdk.core.interceptor.SdkExecutionAttribute;
import software.amazon.awssdk.http.Http2Metric;
import software.amazon.awssdk.http.HttpMetric;
import software.amazon.awssdk.http.Protocol;
import software.amazon.awssdk.http.ProtocolNegotiation;
import software.amazon.awssdk.http.nio.netty.NettyNioAsyncHttpClient;
import software.amazon.awssdk.http.urlconnection.UrlConnectionHttpClient;
import software.amazon.awssdk.metrics.MetricCollection;
import software.amazon.awssdk.metrics.MetricPublisher;
import software.amazon.awssdk.metrics.MetricRecord;
import software.amazon.awssdk.regions.Region;
import software.amazon.awssdk.services.kinesis.KinesisAsyncClient;
import software.amazon.awssdk.services.kinesis.KinesisClient;

/**
 * Entry point. Usage: java [-Daws.cborEnabled=false] -cp ... strait.interop.Main http1|h2c|tls
 * Endpoint from STRAIT_ENDPOINT (default http://127.0.0.1:4567); in tls mode STRAIT_TLS_ENDPOINT
 * (https://localhost:PORT) and STRAIT_CA (PEM to trust). Exit status 0 only if every check passed.
 */
public final class Main {
    private Main() {}

    /** Records the request and response Content-Type of every HTTP exchange. */
    static final class WireRecorder implements ExecutionInterceptor {
        private static final ExecutionAttribute<String> REQ_CT = new ExecutionAttribute<>("strait.reqContentType");
        final Set<String> requestTypes = ConcurrentHashMap.newKeySet();
        /** Operation name → request content types it was sent with. */
        final ConcurrentHashMap<String, Set<String>> requestTypesByOp = new ConcurrentHashMap<>();
        final ConcurrentLinkedQueue<String> mismatches = new ConcurrentLinkedQueue<>();
        final AtomicInteger exchanges = new AtomicInteger();

        @Override
        public void beforeTransmission(Context.BeforeTransmission ctx, ExecutionAttributes attrs) {
            String ct = mediaType(ctx.httpRequest().firstMatchingHeader("Content-Type").orElse("<none>"));
            String op = attrs.getAttribute(SdkExecutionAttribute.OPERATION_NAME);
            // The SDK sends the event-stream operation SubscribeToShard as awsJson1.1 even with CBOR on (its
            // generated client uses the JSON protocol factory for it); kept apart from the CBOR/JSON switch check.
            if (!"SubscribeToShard".equals(op)) requestTypes.add(ct);
            requestTypesByOp.computeIfAbsent(op, k -> ConcurrentHashMap.newKeySet()).add(ct);
            attrs.putAttribute(REQ_CT, ct);
        }

        @Override
        public void afterTransmission(Context.AfterTransmission ctx, ExecutionAttributes attrs) {
            exchanges.incrementAndGet();
            String req = attrs.getAttribute(REQ_CT);
            String resp = mediaType(ctx.httpResponse().firstMatchingHeader("Content-Type").orElse("<none>"));
            boolean eventStream = "SubscribeToShard".equals(attrs.getAttribute(SdkExecutionAttribute.OPERATION_NAME))
                    && ctx.httpResponse().isSuccessful() && resp.equals("application/vnd.amazon.eventstream");
            if (req != null && !req.equals(resp) && !eventStream) {
                String op = attrs.getAttribute(SdkExecutionAttribute.OPERATION_NAME);
                mismatches.add(op + " (HTTP " + ctx.httpResponse().statusCode() + "): request " + req + ", response " + resp);
            }
        }

        private static String mediaType(String v) {
            int semi = v.indexOf(';');
            return (semi >= 0 ? v.substring(0, semi) : v).trim().toLowerCase(Locale.ROOT);
        }
    }

    /** Notes which HTTP client served the calls and whether HTTP/2 stream metrics appeared. */
    static final class MetricRecorder implements MetricPublisher {
        final Set<String> clientNames = ConcurrentHashMap.newKeySet();
        final AtomicInteger http2Samples = new AtomicInteger();

        @Override
        public void publish(MetricCollection mc) {
            walk(mc);
        }

        private void walk(MetricCollection mc) {
            for (MetricRecord<?> r : mc) {
                if (r.metric() == HttpMetric.HTTP_CLIENT_NAME) {
                    clientNames.add(String.valueOf(r.value()));
                } else if (r.metric() == Http2Metric.LOCAL_STREAM_WINDOW_SIZE_IN_BYTES
                        || r.metric() == Http2Metric.REMOTE_STREAM_WINDOW_SIZE_IN_BYTES) {
                    http2Samples.incrementAndGet();
                }
            }
            for (MetricCollection c : mc.children()) walk(c);
        }

        @Override
        public void close() {}
    }

    /** Trust managers that trust exactly the certificates in a PEM file (strait's self-signed cert). */
    static TrustManager[] trustManagers(Path pem) throws Exception {
        KeyStore ks = KeyStore.getInstance(KeyStore.getDefaultType());
        ks.load(null, null);
        int i = 0;
        try (InputStream in = Files.newInputStream(pem)) {
            for (Certificate c : CertificateFactory.getInstance("X.509").generateCertificates(in)) {
                ks.setCertificateEntry("strait-" + i++, c);
            }
        }
        if (i == 0) throw new IllegalArgumentException("no certificate in " + pem);
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(ks);
        return tmf.getTrustManagers();
    }

    /** Netty logs through java.util.logging here (it ignores slf4j-nop); keep its INFO chatter out of the output. */
    private static final java.util.logging.Logger NETTY_LOG = java.util.logging.Logger.getLogger("io.netty");

    public static void main(String[] args) throws Exception {
        NETTY_LOG.setLevel(java.util.logging.Level.WARNING);
        String transport = args.length > 0 ? args[0] : "http1";
        if (!transport.equals("http1") && !transport.equals("h2c") && !transport.equals("tls")) {
            System.err.println("usage: Main http1|h2c|tls");
            System.exit(2);
        }
        // tls: STRAIT_TLS_ENDPOINT (https://localhost:PORT) and STRAIT_CA (the PEM to trust)
        String endpoint = transport.equals("tls")
                ? System.getenv().getOrDefault("STRAIT_TLS_ENDPOINT", "https://localhost:4567")
                : System.getenv().getOrDefault("STRAIT_ENDPOINT", "http://127.0.0.1:4567");
        // Same switches the SDK reads (SdkSystemSetting.CBOR_ENABLED).
        boolean cbor = Boolean.parseBoolean(System.getProperty("aws.cborEnabled",
                System.getenv().getOrDefault("AWS_CBOR_DISABLED", "false").equalsIgnoreCase("true") ? "false" : "true"));
        String mode = (cbor ? "cbor" : "json") + "/" + transport;
        System.out.printf("# AWS SDK for Java v2 Kinesis interop: mode=%s endpoint=%s sdk=%s%n", mode, endpoint,
                software.amazon.awssdk.core.util.VersionInfo.SDK_VERSION);

        WireRecorder wire = new WireRecorder();
        MetricRecorder metrics = new MetricRecorder();
        EventStreamTap tap = new EventStreamTap();
        ClientOverrideConfiguration override = ClientOverrideConfiguration.builder()
                // No retries: a server error must surface as a failed check, not be hidden by a retry.
                .retryStrategy(AwsRetryStrategy.doNotRetry())
                .apiCallTimeout(Duration.ofSeconds(60))
                .addExecutionInterceptor(wire)
                .addExecutionInterceptor(tap)
                .addMetricPublisher(metrics)
                .build();
        StaticCredentialsProvider creds = StaticCredentialsProvider.create(
                AwsBasicCredentials.create("AKIASTRAITINTEROP000", "strait-interop-dummy-secret-key"));

        KinesisClient client;
        KinesisAsyncClient async = null;
        if (transport.equals("http1")) {
            client = KinesisClient.builder()
                    .endpointOverride(URI.create(endpoint))
                    .region(Region.US_EAST_1)
                    .credentialsProvider(creds)
                    .httpClient(UrlConnectionHttpClient.builder()
                            .connectionTimeout(Duration.ofSeconds(5))
                            .socketTimeout(Duration.ofSeconds(60))
                            .build())
                    .overrideConfiguration(override)
                    .build();
        } else if (transport.equals("tls")) {
            String ca = System.getenv().getOrDefault("STRAIT_CA", "");
            if (ca.isEmpty()) {
                System.err.println("tls mode needs STRAIT_CA (the server certificate, PEM)");
                System.exit(2);
            }
            TrustManager[] trust = trustManagers(Path.of(ca));
            async = KinesisAsyncClient.builder()
                    .endpointOverride(URI.create(endpoint))
                    .region(Region.US_EAST_1)
                    .credentialsProvider(creds)
                    .httpClientBuilder(NettyNioAsyncHttpClient.builder()
                            .protocol(Protocol.HTTP2)
                            // https + HTTP2 + ALPN: the TLS handshake offers h2 and the server must pick it
                            .protocolNegotiation(ProtocolNegotiation.ALPN)
                            .tlsTrustManagersProvider(() -> trust)
                            .maxConcurrency(64)
                            .connectionTimeout(Duration.ofSeconds(5))
                            .readTimeout(Duration.ofSeconds(60)))
                    .overrideConfiguration(override)
                    .build();
            client = Harness.syncView(async, 90);
        } else {
            async = KinesisAsyncClient.builder()
                    .endpointOverride(URI.create(endpoint))
                    .region(Region.US_EAST_1)
                    .credentialsProvider(creds)
                    .httpClientBuilder(NettyNioAsyncHttpClient.builder()
                            .protocol(Protocol.HTTP2)
                            // plain http + HTTP2 + ASSUME_PROTOCOL = h2c with prior knowledge
                            .protocolNegotiation(ProtocolNegotiation.ASSUME_PROTOCOL)
                            .maxConcurrency(64)
                            .connectionTimeout(Duration.ofSeconds(5))
                            .readTimeout(Duration.ofSeconds(60)))
                    .overrideConfiguration(override)
                    .build();
            client = Harness.syncView(async, 90);
        }

        Harness h = new Harness(mode);
        try {
            new Suite(client, async, h, cbor, transport).run();
            if (async != null) {
                new Efo(client, async, h, tap, wire, cbor, transport).run();
            }
        } finally {
            // Transport-level checks, from everything the suite sent.
            String expectedType = cbor ? "application/x-amz-cbor-1.1" : "application/x-amz-json-1.1";
            h.check("wire: every request (but SubscribeToShard) used Content-Type " + expectedType, () -> {
                Harness.ok(wire.exchanges.get() > 0, "no HTTP exchange was recorded");
                Harness.eq(Set.of(expectedType), Set.copyOf(wire.requestTypes), "request content types");
            });
            h.check("wire: every response (including errors) answered in the request's content type", () -> {
                Harness.ok(wire.mismatches.isEmpty(), "%d mismatches, first ones: %s", wire.mismatches.size(),
                        wire.mismatches.stream().limit(5).toList());
            });
            Thread.sleep(200); // async metric publication may trail the last call slightly
            if (async != null) {
                h.check("wire: calls went over HTTP/2 (Netty HTTP/2 stream metrics seen)", () -> {
                    Harness.ok(metrics.clientNames.contains("NettyNio"), "HTTP client names: %s", metrics.clientNames);
                    Harness.ok(metrics.http2Samples.get() > 0, "no HTTP/2 stream-window metric was published");
                });
            }
            h.summary();
            try {
                client.close();
            } catch (RuntimeException ignored) {
                // closing must not change the verdict
            }
        }
        System.exit(h.failed() == 0 ? 0 : 1);
    }
}
