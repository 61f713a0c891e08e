package strait.kclinterop;

import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;

/** Minimal check runner: named checks, PASS/FAIL lines and a summary line. */
final class Checks {
    interface Body { void run() throws Exception; }

    private final PrintStream out = System.out;
    private final List<String> failures = new ArrayList<>();
    private int passed;
    private int seq;

    /** Runs one check; returns true when it passed. */
    boolean check(String name, Body body) {
        String id = String.format("%02d %s", ++seq, name);
        long t0 = System.nanoTime();
        try {
            body.run();
            passed++;
            out.printf("PASS %s (%d ms)%n", id, (System.nanoTime() - t0) / 1_000_000);
            out.flush();
            return true;
        } catch (Throwable t) {
            failures.add(id);
            out.printf("FAIL %s: %s%n", id, describe(t));
            out.flush();
            return false;
        }
    }

    static String describe(Throwable t) {
        StringBuilder sb = new StringBuilder();
        if (t instanceof AssertionError) {
            sb.append(t.getMessage());
        } else {
            sb.append(t.getClass().getName()).append(": ").append(t.getMessage());
            Throwable c = t.getCause();
            int depth = 0;
            while (c != null && depth++ < 4) {
                sb.append("\n      caused by ").append(c.getClass().getName()).append(": ").append(c.getMessage());
                c = c.getCause();
            }
        }
        int shown = 0;
        for (StackTraceElement e : t.getStackTrace()) {
            if (e.getClassName().startsWith("strait.kclinterop.") && !e.getClassName().startsWith("strait.kclinterop.Checks")) {
                sb.append("\n      at ").append(e);
                if (++shown == 3) break;
            }
        }
        return sb.toString();
    }

    static void require(boolean cond, String fmt, Object... args) {
        if (!cond) throw new AssertionError(String.format(fmt, args));
    }

    int passed() { return passed; }
    int failed() { return failures.size(); }

    void summary(String label) {
        if (!failures.isEmpty()) {
            out.println("FAILED CHECKS:");
            for (String f : failures) out.printf("  - %s%n", f);
        }
        out.printf("%s: %d passed, %d failed%n", label, passed, failures.size());
        out.flush();
    }
}
