package dev.kiln.transport;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.locks.LockSupport;

import static dev.kiln.transport.InProcessChannelTest.awaitParked;
import static dev.kiln.transport.InProcessChannelTest.joinOrFail;
import static org.junit.jupiter.api.Assertions.assertDoesNotThrow;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

@Timeout(value = 5, unit = TimeUnit.MINUTES)
class WakerTest {

    @Test
    void armAndDisarm() {
        Waker waker = new Waker();
        assertFalse(waker.isArmed());
        waker.arm();
        assertTrue(waker.isArmed());
        waker.arm();
        assertTrue(waker.isArmed());
        waker.disarm();
        assertFalse(waker.isArmed());
        waker.disarm();
        assertFalse(waker.isArmed());
    }

    @Test
    void signalWithNobodyArmedIsHarmless() {
        Waker waker = new Waker();
        assertDoesNotThrow(waker::signal);
        waker.arm();
        waker.disarm();
        assertDoesNotThrow(waker::signal);
        assertFalse(waker.isArmed(), "signal does not arm");
    }

    @Test
    void signalUnparksAParkedThread() throws InterruptedException {
        Waker waker = new Waker();
        AtomicBoolean ready = new AtomicBoolean();
        Thread waiter = new Thread(() -> {
            waker.arm();
            while (!ready.get() && !Thread.currentThread().isInterrupted()) {
                LockSupport.park(); // no timeout: only an unpark gets this thread out
            }
        }, "waiter");
        waiter.setDaemon(true);
        waiter.start();
        awaitParked(waiter);
        assertTrue(waker.isArmed());
        ready.set(true);
        waker.signal();
        joinOrFail(waiter);
    }

    @Test
    void signalBeforeParkIsNotLost() throws InterruptedException {
        Waker waker = new Waker();
        AtomicBoolean armed = new AtomicBoolean();
        AtomicBoolean signalled = new AtomicBoolean();
        AtomicBoolean passed = new AtomicBoolean();
        Thread waiter = new Thread(() -> {
            waker.arm();
            armed.set(true);
            while (!signalled.get()) {
                Thread.onSpinWait(); // spin, so that nothing consumes the permit before the park below
            }
            LockSupport.park(); // returns at once on the signal's permit
            passed.set(!Thread.currentThread().isInterrupted());
        }, "waiter");
        waiter.setDaemon(true);
        waiter.start();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (!armed.get()) {
            if (System.nanoTime() - deadline > 0) {
                fail("the waiter did not arm");
            }
            Thread.onSpinWait();
        }
        waker.signal();
        signalled.set(true);
        joinOrFail(waiter);
        assertTrue(passed.get());
    }
}
