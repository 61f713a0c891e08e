package strait.interop;

import java.io.PrintStream;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;
import java.util.regex.Pattern;

import software.amazon.awssdk.awscore.exception.AwsServiceException;
import software.amazon.awssdk.services.kinesis.KinesisAsyncClient;
import software.amazon.awssdk.services.kinesis.KinesisClient;

/** Minimal check runner: named checks, PASS/FAIL lines, a summary line, and assertion helpers. */
final class Harness {
    /** Thrown when a check cannot run because an earlier check failed to produce what it needs. */
    static final class Blocked extends RuntimeException {
        Blocked(String msg) { super(msg); }
    }

    interface Body { void run() throws Exception; }

    private final String mode;
    private final PrintStream out = System.out;
    private final Pattern skip;
    private final List<String> failures = new ArrayList<>();
    private int passed;
    private int skipped;
    private int seq;

    Harness(String mode) {
        this.mode = mode;
        String s = System.getenv("INTEROP_SKIP");
        this.skip = (s == null || s.isBlank()) ? null : Pattern.compile(s);
    }

    /** Runs one check; returns true when it passed. */
    boolean check(String name, Body body) {
        String id = String.format("%02d %s", ++seq, name);
        if (skip != null && skip.matcher(name).find()) {
            skipped++;
            out.printf("SKIP [%s] %s (INTEROP_SKIP)%n", mode, id);
            return false;
        }
        long t0 = System.nanoTime();
        try {
            body.run();
            passed++;
            out.printf("PASS [%s] %s (%d ms)%n", mode, id, (System.nanoTime() - t0) / 1_000_000);
            out.flush();
            return true;
        } catch (Throwable t) {
            failures.add(id);
            out.printf("FAIL [%s] %s: %s%n", mode, id, describe(t));
            out.flush();
            return false;
        }
    }

    static String describe(Throwable t) {
        if (t instanceof Blocked) {
            return "blocked: " + t.getMessage();
        }
        StringBuilder sb = new StringBuilder();
        if (t instanceof AssertionError) {
            sb.append(t.getMessage());
        } else {
            sb.append(t.getClass().getName()).append(": ").append(t.getMessage());
            if (t instanceof AwsServiceException ase && ase.awsErrorDetails() != null) {
                sb.append(" [errorCode=").append(ase.awsErrorDetails().errorCode())
                  .append(", status=").append(ase.statusCode()).append("]");
            }
            Throwable c = t.getCause();
            int depth = 0;
            while (c != null && depth++ < 4) {
                sb.append("\n      caused by ").append(c.getClass().getName()).append(": ").append(c.getMessage());
                c = c.getCause();
            }
        }
        // Where in this suite it happened (first frames of our own code), to locate the step.
        int shown = 0;
        for (StackTraceElement e : t.getStackTrace()) {
            if (e.getClassName().startsWith("strait.interop.") && !e.getClassName().startsWith("strait.interop.Harness")) {
                sb.append("\n      at ").append(e);
                if (++shown == 2) break;
            }
        }
        return sb.toString();
    }

    int passed() { return passed; }
    int failed() { return failures.size(); }

    void summary() {
        if (!failures.isEmpty()) {
            out.printf("FAILED CHECKS [%s]:%n", mode);
            for (String f : failures) out.printf("  - %s%n", f);
        }
        String label = mode.replace('/', '-');
        if (skipped > 0) {
            out.printf("%s: %d passed, %d failed, %d skipped%n", label, passed, failures.size(), skipped);
        } else {
            out.printf("%s: %d passed, %d failed%n", label, passed, failures.size());
        }
        out.flush();
    }

    // ---------------------------------------------------------------- assertions

    static void ok(boolean cond, String fmt, Object... args) {
        if (!cond) throw new AssertionError(String.format(fmt, args));
    }

    static void eq(Object expected, Object actual, String what) {
        if (expected == null ? actual != null : !expected.equals(actual)) {
            throw new AssertionError(what + ": expected <" + expected + "> but was <" + actual + ">");
        }
    }

    static <T> T need(T value, String what) {
        if (value == null) throw new Blocked(what);
        return value;
    }

    /** Runs body, which must throw an SDK exception of exactly type expected (or a subclass). */
    static <E extends AwsServiceException> E expectError(Class<E> expected, String expectedCode, Body body) {
        try {
            body.run();
        } catch (Throwable t) {
            if (expected.isInstance(t)) {
                E e = expected.cast(t);
                ok(e.awsErrorDetails() != null, "no awsErrorDetails on %s", t);
                if (expectedCode != null) {
                    eq(expectedCode, e.awsErrorDetails().errorCode(), "errorCode");
                }
                String msg = e.awsErrorDetails().errorMessage();
                ok(msg != null && !msg.isBlank(), "%s has an empty error message", t.getClass().getSimpleName());
                ok(e.statusCode() >= 400 && e.statusCode() < 500, "expected a 4xx status, got %d", e.statusCode());
                return e;
            }
            throw new AssertionError("expected " + expected.getSimpleName()
                    + (expectedCode != null ? " (" + expectedCode + ")" : "") + " but got " + describe(t), t);
        }
        throw new AssertionError("expected " + expected.getSimpleName() + " but the call succeeded");
    }

    // ---------------------------------------------------------------- async -> sync view

    /**
     * A KinesisClient whose every operation is forwarded to the same-named method of the async client
     * and joined. Lets one suite body run over the sync (HTTP/1.1) and the async Netty (h2c) clients.
     */
    static KinesisClient syncView(KinesisAsyncClient async, long timeoutSeconds) {
        return (KinesisClient) Proxy.newProxyInstance(
                KinesisClient.class.getClassLoader(), new Class<?>[] {KinesisClient.class},
                (proxy, m, args) -> {
                    switch (m.getName()) {
                        case "close": async.close(); return null;
                        case "toString": return "syncView(" + async + ")";
                        case "hashCode": return System.identityHashCode(proxy);
                        case "equals": return proxy == args[0];
                        case "serviceName": return async.serviceName();
                        case "serviceClientConfiguration": return async.serviceClientConfiguration();
                        default: break;
                    }
                    if (m.isDefault() && m.getName().endsWith("Paginator")) {
                        // Sync paginators are default methods built on this client's own list calls.
                        return java.lang.reflect.InvocationHandler.invokeDefault(proxy, m, args);
                    }
                    Method am = KinesisAsyncClient.class.getMethod(m.getName(), m.getParameterTypes());
                    Object r;
                    try {
                        r = am.invoke(async, args);
                    } catch (InvocationTargetException ite) {
                        throw ite.getCause();
                    }
                    if (r instanceof CompletableFuture<?> f) {
                        try {
                            return f.get(timeoutSeconds, TimeUnit.SECONDS);
                        } catch (ExecutionException ee) {
                            Throwable c = ee.getCause();
                            // CompletionException wrappers: unwrap to the SDK exception, as the sync client throws it.
                            while (c instanceof java.util.concurrent.CompletionException && c.getCause() != null) {
                                c = c.getCause();
                            }
                            throw c;
                        } catch (TimeoutException te) {
                            f.cancel(true);
                            throw new AssertionError(m.getName() + " did not complete in " + timeoutSeconds + " s");
                        }
                    }
                    throw new UnsupportedOperationException("not forwarded: " + m);
                });
    }
}
