package dev.kiln;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.List;
import java.util.concurrent.TimeUnit;
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

    /**
     * Sends a process a signal, as {@code kill -SIGNAL pid}, and waits up to 10 s for {@code kill} to finish.
     *
     * @param signal e.g. {@code STOP}, {@code CONT}, {@code KILL}
     * @param pid    the process
     */
    static void signal(String signal, long pid) {
        try {
            Process kill = new ProcessBuilder("kill", "-" + signal, Long.toString(pid)).inheritIO().start();
            if (!kill.waitFor(10, TimeUnit.SECONDS) || kill.exitValue() != 0) {
                fail("kill -" + signal + " " + pid + " failed");
            }
            if (signal.equals("STOP")) {
                // kill returns once the signal is queued; a thread of the target may still run a moment after.
                Path stat = Path.of("/proc", Long.toString(pid), "stat");
                awaitTrue("process " + pid + " is stopped", SOON, () -> stopped(stat));
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            fail("interrupted while sending " + signal + " to " + pid);
        }
    }

    /** @return whether /proc says the process is stopped (state T), or is gone */
    private static boolean stopped(Path stat) {
        try {
            String text = Files.readString(stat);
            int close = text.lastIndexOf(')'); // the state follows the command name, which may hold spaces
            return close > 0 && close + 2 < text.length() && text.charAt(close + 2) == 'T';
        } catch (IOException e) {
            return true; // gone: nothing of it runs
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
