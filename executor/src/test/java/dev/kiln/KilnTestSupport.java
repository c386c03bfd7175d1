package dev.kiln;

import java.time.Duration;
import java.util.List;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;
import java.util.function.Supplier;

import static org.junit.jupiter.api.Assertions.fail;

/** Helpers shared by the executor tests: bounded polling, never a bare wait. */
final class KilnTestSupport {

    /** Generous bound for anything the runtime promises to do "soon" on a loaded 2-core machine. */
    static final Duration SOON = Duration.ofSeconds(20);

    private KilnTestSupport() {
    }

    /** Polls {@code condition} until it holds; fails the test with {@code what} after {@code timeout}. */
    static void awaitTrue(String what, Duration timeout, BooleanSupplier condition) {
        awaitTrue(() -> what, timeout, condition);
    }

    /** Like {@link #awaitTrue(String, Duration, BooleanSupplier)}, describing the wait only on failure. */
    static void awaitTrue(Supplier<String> what, Duration timeout, BooleanSupplier condition) {
        long deadline = System.nanoTime() + timeout.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() - deadline > 0) {
                fail("timed out after " + timeout + " waiting for: " + what.get());
            }
            LockSupport.parkNanos(1_000_000);
        }
    }

    /** @return the names of live threads whose name starts with one of Kiln's thread prefixes */
    static List<String> liveKilnThreads() {
        return Thread.getAllStackTraces().keySet().stream()
                .filter(Thread::isAlive)
                .map(Thread::getName)
                .filter(n -> n.startsWith("kiln-actor-") || n.startsWith("kiln-driver-"))
                .sorted()
                .toList();
    }

    /** Waits until no {@code kiln-actor-*} or {@code kiln-driver-*} thread is alive. */
    static void awaitNoKilnThreads() {
        awaitTrue(() -> "no kiln-actor-*/kiln-driver-* thread alive, still: " + liveKilnThreads(), SOON,
                () -> liveKilnThreads().isEmpty());
    }
}
