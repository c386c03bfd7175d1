package dev.kiln.integration;

import java.time.Duration;
import java.util.function.BooleanSupplier;

/** Waits for a condition with a timeout (every wait in a test has one), sleeping between checks. */
final class KilnTestWait {

    private static final Duration TIMEOUT = Duration.ofSeconds(60);

    private KilnTestWait() {
    }

    static void until(String what, BooleanSupplier condition) throws InterruptedException {
        long deadline = System.nanoTime() + TIMEOUT.toNanos();
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() > deadline) {
                throw new AssertionError("timed out after " + TIMEOUT + " waiting for: " + what);
            }
            Thread.sleep(10);
        }
    }
}
