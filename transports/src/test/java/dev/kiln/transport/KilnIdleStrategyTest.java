package dev.kiln.transport;

import dev.kiln.compiler.IdleMode;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.LockSupport;

import static dev.kiln.transport.InProcessChannelTest.awaitParked;
import static dev.kiln.transport.InProcessChannelTest.joinOrFail;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(value = 5, unit = TimeUnit.MINUTES)
class KilnIdleStrategyTest {

    /** 32 spins (every fourth a yield) come before BACKOFF arms its waker. */
    private static final int BACKOFF_BUSY_IDLES = 32;

    @Test
    void blockingArmsOnFirstIdleAndReturnsWithoutParking() throws InterruptedException {
        Waker waker = new Waker();
        AtomicBoolean armedAfterFirstIdle = new AtomicBoolean();
        Thread t = new Thread(() -> {
            KilnIdleStrategy idle = new KilnIdleStrategy(IdleMode.BLOCKING, waker);
            LockSupport.unpark(Thread.currentThread()); // a permit that a park would consume
            idle.idle();
            armedAfterFirstIdle.set(waker.isArmed());
            // Had idle() parked, the permit would be gone and this park would wait for the test's unpark.
            LockSupport.park();
        }, "blocking");
        t.setDaemon(true);
        t.start();
        joinOrFail(t);
        assertTrue(armedAfterFirstIdle.get());
    }

    @Test
    void blockingThreadIsWokenBySignal() throws InterruptedException {
        Waker waker = new Waker();
        AtomicBoolean work = new AtomicBoolean();
        AtomicInteger idles = new AtomicInteger();
        Thread t = new Thread(() -> {
            KilnIdleStrategy idle = new KilnIdleStrategy(IdleMode.BLOCKING, waker);
            while (!work.get() && !Thread.currentThread().isInterrupted()) {
                idle.idle(0); // arms, then parks; re-parks after each wake-up
                idles.incrementAndGet();
            }
            idle.idle(1);
        }, "blocking");
        t.setDaemon(true);
        t.start();
        awaitParked(t);
        assertTrue(waker.isArmed(), "armed before parking");
        work.set(true);
        waker.signal();
        joinOrFail(t);
        assertTrue(idles.get() >= 2, "armed on the first idle, parked on the next");
        assertFalse(waker.isArmed(), "work disarms");
    }

    @Test
    void resetDisarms() {
        Waker waker = new Waker();
        KilnIdleStrategy idle = new KilnIdleStrategy(IdleMode.BLOCKING, waker);
        idle.idle();
        assertTrue(waker.isArmed());
        idle.reset();
        assertFalse(waker.isArmed());
        idle.idle(0);
        assertTrue(waker.isArmed(), "no work: arms again");
        idle.idle(3);
        assertFalse(waker.isArmed(), "work resets");
    }

    @Test
    void backoffSpinsAndYieldsBeforeArming() {
        Waker waker = new Waker();
        KilnIdleStrategy idle = new KilnIdleStrategy(IdleMode.BACKOFF, waker);
        for (int round = 0; round < 2; round++) {
            for (int i = 0; i < BACKOFF_BUSY_IDLES; i++) {
                idle.idle(0);
                assertFalse(waker.isArmed(), "idle " + i + " of round " + round);
            }
            idle.idle(0);
            assertTrue(waker.isArmed());
            for (int i = 0; i < 12; i++) {
                idle.idle(0); // parks for growing periods (1 us to 4 ms in all), stays armed
                assertTrue(waker.isArmed());
            }
            idle.reset(); // starts again with spinning
            assertFalse(waker.isArmed());
        }
    }

    @Test
    void backoffLearnsToYieldFromShortWaitsAndForgetsAfterLongOnes() throws InterruptedException {
        Waker waker = new Waker();
        KilnIdleStrategy idle = new KilnIdleStrategy(IdleMode.BACKOFF, waker);
        java.util.concurrent.atomic.AtomicReference<String> outcome = new java.util.concurrent.atomic.AtomicReference<>();
        // A thread of its own: signal() unparks the signalled thread, and that permit should not outlive the test.
        Thread t = new Thread(() -> outcome.set(learnAndForget(idle, waker)), "backoff");
        t.setDaemon(true);
        t.start();
        joinOrFail(t);
        assertEquals("learnt, then forgot", outcome.get());
    }

    /**
     * Waits that a signal ends right after the waker arms are short, so later waits yield before arming; waits that
     * last milliseconds take that back, until a wait arms right after its spins again.
     */
    private static String learnAndForget(KilnIdleStrategy idle, Waker waker) {
        boolean learnt = false;
        // A round's wait is short unless the machine preempts this thread during its 32 spins: some round is.
        for (int round = 0; round < 1_000 && !learnt; round++) {
            learnt = idlesUntilArmed(idle, waker) > BACKOFF_BUSY_IDLES + 1;
            waker.signal(); // the peer's value, right away: the wait was as long as the spins
            idle.reset();
        }
        if (!learnt) {
            return "never yielded past the spins after 1,000 short waits";
        }
        // Each long wait halves the yielding: from at most 20 us, 16 of them bring it to nothing.
        for (int round = 0; round < 16; round++) {
            idlesUntilArmed(idle, waker);
            sleepOneMilli(); // not a park: the signals above left this thread a permit
            waker.signal();
            idle.reset();
        }
        int idles = idlesUntilArmed(idle, waker);
        idle.reset();
        return idles == BACKOFF_BUSY_IDLES + 1 ? "learnt, then forgot"
                : "still yielded after long waits: armed at idle " + idles;
    }

    private static void sleepOneMilli() {
        try {
            Thread.sleep(1);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** @return the idle calls until the waker armed, that one included */
    private static int idlesUntilArmed(KilnIdleStrategy idle, Waker waker) {
        int idles = 0;
        while (!waker.isArmed()) {
            idle.idle(0);
            idles++;
        }
        return idles;
    }

    @Test
    void yieldingFollowsTheWaitsThatParked() {
        long max = KilnIdleStrategy.MAX_YIELD_NS;
        assertEquals(6_000, KilnIdleStrategy.nextYieldNs(0, 3_000), "twice a short wait");
        assertEquals(6_000, KilnIdleStrategy.nextYieldNs(6_000, 1_000), "a shorter wait keeps what was learnt");
        assertEquals(max, KilnIdleStrategy.nextYieldNs(6_000, max), "at most the bound");
        assertEquals(3_000, KilnIdleStrategy.nextYieldNs(6_000, max + 1), "a long wait halves it");
        assertEquals(0, KilnIdleStrategy.nextYieldNs(0, 1_000_000_000), "and leaves nothing as nothing");
    }

    @Test
    void backoffParksLongAtOnceWhereEveryWaitIsSignalled() {
        for (boolean signalled : new boolean[] {false, true}) {
            Waker waker = new Waker();
            KilnIdleStrategy idle = new KilnIdleStrategy(IdleMode.BACKOFF, waker, null, signalled);
            idlesUntilArmed(idle, waker);
            long[] parks = new long[12];
            for (int i = 0; i < parks.length; i++) {
                parks[i] = idle.nextParkNs();
                idle.idle(0);
            }
            long ms = TimeUnit.MILLISECONDS.toNanos(1);
            if (signalled) {
                assertTrue(java.util.Arrays.stream(parks).allMatch(p -> p == ms), java.util.Arrays.toString(parks));
            } else {
                assertEquals(1_000, parks[0], "a wait nobody may signal looks again after 1 us");
                assertEquals(ms, parks[parks.length - 1], "then after doubling periods, up to 1 ms");
            }
            idle.reset();
            assertFalse(waker.isArmed());
        }
    }

    @Test
    void backoffSleepsInGrowingPeriodsButParksLongAtOnceWhereItsSleeperDeclines() throws InterruptedException {
        Waker waker = new Waker();
        AtomicBoolean crossing = new AtomicBoolean(true);
        java.util.List<Long> offered = new java.util.concurrent.CopyOnWriteArrayList<>();
        KilnIdleStrategy idle = new KilnIdleStrategy(IdleMode.BACKOFF, waker, nanos -> {
            offered.add(nanos);
            return crossing.get(); // true: slept in the other process's channel (at once, here)
        }, false);
        java.util.List<Long> sleptIn = new java.util.ArrayList<>();
        long[] declinedNs = new long[1];
        Thread t = new Thread(() -> { // a thread of its own: no permit left over from another test
            idlesUntilArmed(idle, waker);
            for (int i = 0; i < 12; i++) {
                idle.idle(0);
            }
            idle.reset();
            sleptIn.addAll(offered);
            crossing.set(false);
            idlesUntilArmed(idle, waker);
            offered.clear();
            long began = System.nanoTime();
            for (int i = 0; i < 5; i++) {
                idle.idle(0);
            }
            declinedNs[0] = System.nanoTime() - began;
            idle.reset();
        });
        t.start();
        t.join(TimeUnit.SECONDS.toMillis(30));
        assertFalse(t.isAlive(), "the idle calls did not return");
        assertEquals(java.util.List.of(1_000L, 2_000L, 4_000L), sleptIn.subList(0, 3),
                "a wait on another process sleeps in periods that grow from 1 us: " + sleptIn);
        assertEquals(TimeUnit.MILLISECONDS.toNanos(1), sleptIn.getLast(), "up to 1 ms: " + sleptIn);
        assertEquals(5, offered.size(), "the sleeper is asked at each park: " + offered);
        // Parks of 1 us, 2 us, ... 16 us would end within a few hundred microseconds; five of 1 ms take 5 ms, less only
        // if a park returned early (spuriously) three times.
        assertTrue(declinedNs[0] >= TimeUnit.MICROSECONDS.toNanos(2_500), "declined waits parked only "
                + declinedNs[0] / 1_000 + " us in 5 parks: they should park 1 ms each, a peer in this process signals");
    }

    @Test
    void spinNeverArms() {
        Waker waker = new Waker();
        KilnIdleStrategy idle = new KilnIdleStrategy(IdleMode.SPIN, waker);
        for (int i = 0; i < 10_000; i++) {
            idle.idle();
        }
        assertFalse(waker.isArmed());
    }

    @ParameterizedTest
    @EnumSource(IdleMode.class)
    void alias(IdleMode mode) {
        assertEquals("kiln-" + mode.name().toLowerCase(java.util.Locale.ROOT),
                new KilnIdleStrategy(mode, new Waker()).alias());
    }
}
