package strait.kclinterop;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicInteger;

import software.amazon.awssdk.awscore.exception.AwsServiceException;
import software.amazon.awssdk.core.interceptor.Context;
import software.amazon.awssdk.core.interceptor.ExecutionAttributes;
import software.amazon.awssdk.core.interceptor.ExecutionInterceptor;

/** Counts the API calls a client made (and which failed, with why), by operation name. */
final class OpCounter implements ExecutionInterceptor {
    private final Map<String, AtomicInteger> calls = new ConcurrentHashMap<>();
    private final Map<String, AtomicInteger> failures = new ConcurrentHashMap<>();
    private final List<String> failureSamples = new ArrayList<>();

    private static String op(Object request) {
        String n = request.getClass().getSimpleName();
        return n.endsWith("Request") ? n.substring(0, n.length() - "Request".length()) : n;
    }

    @Override
    public void beforeExecution(Context.BeforeExecution context, ExecutionAttributes attrs) {
        calls.computeIfAbsent(op(context.request()), k -> new AtomicInteger()).incrementAndGet();
    }

    @Override
    public void onExecutionFailure(Context.FailedExecution context, ExecutionAttributes attrs) {
        String op = op(context.request());
        failures.computeIfAbsent(op, k -> new AtomicInteger()).incrementAndGet();
        Throwable t = context.exception();
        String why = t.getClass().getSimpleName() + ": " + t.getMessage();
        if (t instanceof AwsServiceException ase && ase.awsErrorDetails() != null) {
            why = ase.awsErrorDetails().errorCode() + " (HTTP " + ase.statusCode() + "): " + ase.awsErrorDetails().errorMessage();
        }
        synchronized (failureSamples) {
            if (failureSamples.size() < 40) failureSamples.add(op + " -> " + why);
        }
    }

    int calls(String op) {
        AtomicInteger n = calls.get(op);
        return n == null ? 0 : n.get();
    }

    int failures(String op) {
        AtomicInteger n = failures.get(op);
        return n == null ? 0 : n.get();
    }

    String summary() {
        Map<String, String> m = new TreeMap<>();
        calls.forEach((k, v) -> m.put(k, v.get() + (failures.containsKey(k) ? " (" + failures.get(k).get() + " failed)" : "")));
        return m.toString();
    }

    List<String> failureSamples() {
        synchronized (failureSamples) {
            return new ArrayList<>(failureSamples);
        }
    }
}
