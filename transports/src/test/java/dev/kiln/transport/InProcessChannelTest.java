package dev.kiln.transport;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.compiler.IdleMode;
import dev.kiln.graph.Transport;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.constraints.IntRange;
import net.jqwik.api.constraints.Size;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;
import java.util.stream.IntStream;

import static dev.kiln.transport.Channel.NOT_READY;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/** Jupiter tests carry their own {@code @Timeout}: a class-level one would also sit on the jqwik property. */
class InProcessChannelTest {

    /** How long a woken thread may take to finish; generous, the machine is shared. */
    private static final long WAKE_MS = 30_000;
    /** How long a whole hammer run may take. */
    private static final long HAMMER_MS = 240_000;

    static ChannelSpec spec(int slots, int readers) {
        return new ChannelSpec(3, 5, 1, IntStream.range(10, 10 + readers).boxed().toList(), slots, 64,
                Transport.IN_PROCESS, "test");
    }

    static Waker[] wakers(int count) {
        Waker[] w = new Waker[count];
        Arrays.setAll(w, i -> new Waker());
        return w;
    }

    static InProcessChannel channel(int slots, int readers) {
        return new InProcessChannel(spec(slots, readers), new Waker(), wakers(readers));
    }

    @Test
    @Timeout(60)
    void oneWakerPerReader() {
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> new InProcessChannel(spec(2, 3), new Waker(), wakers(2)));
        assertEquals("channel c3 has 3 readers, got 2 wakers", e.getMessage());
    }

    @Test
    @Timeout(60)
    void keepsItsSpec() {
        ChannelSpec spec = spec(4, 2);
        InProcessChannel ch = new InProcessChannel(spec, new Waker(), wakers(2));
        assertSame(spec, ch.spec());
        assertEquals("InProcessChannel(c3, published 0)", ch.toString());
        ch.offer(0, "x");
        assertEquals("InProcessChannel(c3, published 1)", ch.toString());
    }

    @Test
    @Timeout(60)
    void singleThreadProtocol() {
        InProcessChannel ch = channel(2, 2);
        assertSame(NOT_READY, ch.poll(0, 0), "nothing published yet");
        assertTrue(ch.offer(0, "v0"));
        assertTrue(ch.offer(1, "v1"));
        assertFalse(ch.offer(2, "v2"), "both slots hold values no reader released");
        assertSame(NOT_READY, ch.poll(0, 2), "a refused offer publishes nothing");

        assertEquals("v0", ch.poll(0, 0));
        assertEquals("v1", ch.poll(0, 1));
        ch.release(0, 0);
        assertFalse(ch.offer(2, "v2"), "reader 1 still holds sequence 0");
        assertEquals("v0", ch.poll(1, 0));
        ch.release(1, 0);
        assertTrue(ch.offer(2, "v2"), "every reader released sequence 0: its slot is free");
        assertFalse(ch.offer(3, "v3"), "sequence 1 is still held");

        assertEquals("v2", ch.poll(1, 2), "a reader may poll ahead of its release");
        ch.release(0, 1);
        ch.release(1, 1);
        assertTrue(ch.offer(3, "v3"));
        assertEquals("v2", ch.poll(0, 2));
        assertEquals("v3", ch.poll(0, 3));
        assertSame(NOT_READY, ch.poll(0, 4));
    }

    @Test
    @Timeout(60)
    void valueStaysInPlaceUntilReleased() {
        InProcessChannel ch = channel(1, 1);
        Object value = new Object();
        assertTrue(ch.offer(0, value));
        assertSame(value, ch.poll(0, 0));
        for (int i = 0; i < 3; i++) {
            assertFalse(ch.offer(1, "next"));
            assertSame(value, ch.poll(0, 0), "read in place, not consumed by poll");
        }
        ch.release(0, 0);
        assertTrue(ch.offer(1, "next"));
        assertEquals("next", ch.poll(0, 1));
    }

    @Test
    @Timeout(60)
    void nullIsAValue() {
        InProcessChannel ch = channel(2, 1);
        assertTrue(ch.offer(0, null));
        assertNull(ch.poll(0, 0));
    }

    @Test
    @Timeout(60)
    void releasingLaterSequencesFreesEarlierSlots() {
        InProcessChannel ch = channel(2, 1);
        assertTrue(ch.offer(0, 0L));
        assertTrue(ch.offer(1, 1L));
        ch.release(0, 1); // releases count: everything up to 1
        assertTrue(ch.offer(2, 2L));
        assertTrue(ch.offer(3, 3L));
        assertFalse(ch.offer(4, 4L));
    }

    @Test
    @Timeout(60)
    void offerWakesAnArmedReader() throws InterruptedException {
        Waker[] readerWakers = wakers(2);
        InProcessChannel ch = new InProcessChannel(spec(2, 2), new Waker(), readerWakers);
        AtomicReference<Object> seen = new AtomicReference<>();
        Thread reader = parkUntil(readerWakers[1], () -> ch.poll(1, 0) != NOT_READY, () -> seen.set(ch.poll(1, 0)));
        awaitParked(reader);
        assertTrue(ch.offer(0, "hello"));
        joinOrFail(reader);
        assertEquals("hello", seen.get());
    }

    @Test
    @Timeout(60)
    void releaseWakesAnArmedWriter() throws InterruptedException {
        Waker writerWaker = new Waker();
        InProcessChannel ch = new InProcessChannel(spec(1, 1), writerWaker, wakers(1));
        assertTrue(ch.offer(0, "a"));
        Thread writer = parkUntil(writerWaker, () -> ch.offer(1, "b"), () -> { });
        awaitParked(writer);
        ch.release(0, 0);
        joinOrFail(writer);
        assertEquals("b", ch.poll(0, 1));
    }

    @Test
    void aChannelInsideOneThreadHandsOffWithoutWakeUps() {
        Waker shared = new Waker();
        InProcessChannel ch = new InProcessChannel(spec(2, 2), shared, new Waker[] {shared, shared});
        assertTrue(ch.isOneThread());
        assertFalse(channel(2, 2).isOneThread(), "wakers of other threads");
        assertFalse(new InProcessChannel(spec(2, 2), shared, new Waker[] {shared, new Waker()}).isOneThread(),
                "one reader on another thread");
        shared.arm(); // as if the thread had announced a sleep: no peer may clear it, as none exists
        assertTrue(ch.offer(0, "a"));
        assertTrue(ch.offer(1, "b"));
        assertFalse(ch.offer(2, "c"), "two slots");
        assertEquals("a", ch.poll(0, 0));
        assertEquals("a", ch.poll(1, 0));
        ch.release(0, 0);
        assertFalse(ch.offer(2, "c"), "reader 1 still holds sequence 0");
        ch.release(1, 0);
        assertTrue(ch.offer(2, "c"));
        assertEquals("c", ch.poll(1, 2));
        assertTrue(shared.isArmed(), "nothing signalled the thread's own waker");
    }

    @Test
    void aChannelInsideOneThreadWakesAgainWhileAnotherThreadMayRunAnEnd() {
        Waker shared = new Waker();
        InProcessChannel ch = new InProcessChannel(spec(1, 1), shared, new Waker[] {shared});
        ch.shareEnd(true);
        ch.shareEnd(true);
        assertFalse(ch.isOneThread());
        shared.arm();
        assertTrue(ch.offer(0, "a"));
        assertFalse(shared.isArmed(), "a publication signals the readers' waker again");
        shared.arm();
        ch.release(0, 0);
        assertFalse(shared.isArmed(), "a release signals the writer's waker again");
        ch.shareEnd(false);
        assertFalse(ch.isOneThread(), "the other end is still shared");
        ch.shareEnd(false);
        assertTrue(ch.isOneThread());
        shared.arm();
        assertTrue(ch.offer(1, "b"));
        assertTrue(shared.isArmed(), "back inside one thread: no signal");
        InProcessChannel between = channel(1, 1);
        between.shareEnd(true);
        between.shareEnd(false);
        assertFalse(between.isOneThread(), "ends with different wakers always fence");
    }

    @Test
    void aPublicationAlsoWakesTheThreadsThatMayRunAReader() {
        InProcessChannel ch = channel(4, 2);
        Waker helper = new Waker();
        ch.alsoWake(new Waker[] {helper});
        ch.alsoWake(new Waker[] {helper}); // the second reader
        helper.arm();
        assertTrue(ch.offer(0, "a"));
        assertFalse(helper.isArmed(), "signalled");
        ch.alsoWake(null);
        helper.arm();
        assertTrue(ch.offer(1, "b"));
        assertFalse(helper.isArmed(), "one reader may still be run by it");
        ch.alsoWake(null);
        helper.arm();
        assertTrue(ch.offer(2, "c"));
        assertTrue(helper.isArmed(), "no reader shared any more");
    }

    /** A thread that arms {@code waker}, then parks with no timeout until {@code condition} holds. */
    private static Thread parkUntil(Waker waker, java.util.function.BooleanSupplier condition, Runnable after) {
        Thread t = new Thread(() -> {
            waker.arm();
            while (!condition.getAsBoolean()) {
                if (Thread.currentThread().isInterrupted()) {
                    return;
                }
                LockSupport.park();
            }
            after.run();
        }, "parked");
        t.setDaemon(true);
        t.start();
        return t;
    }

    static void awaitParked(Thread t) throws InterruptedException {
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
        while (t.getState() != Thread.State.WAITING && t.getState() != Thread.State.TIMED_WAITING) {
            if (System.nanoTime() - deadline > 0 || !t.isAlive()) {
                fail("thread did not park: " + t.getState());
            }
            Thread.sleep(1);
        }
    }

    static void joinOrFail(Thread t) throws InterruptedException {
        t.join(WAKE_MS);
        if (t.isAlive()) {
            t.interrupt();
            fail("thread " + t.getName() + " was not woken");
        }
    }

    @ParameterizedTest
    @Timeout(value = 5, unit = TimeUnit.MINUTES)
    @EnumSource(value = IdleMode.class, names = {"BACKOFF", "BLOCKING"})
    void writerAndThreeReadersOnFourSlots(IdleMode mode) throws InterruptedException {
        hammer(mode, 4, 3, 1_000_000);
    }

    @ParameterizedTest
    @Timeout(value = 5, unit = TimeUnit.MINUTES)
    @EnumSource(value = IdleMode.class, names = {"BACKOFF", "BLOCKING"})
    void writerAndOneReaderOnOneSlot(IdleMode mode) throws InterruptedException {
        hammer(mode, 1, 1, 100_000);
    }

    /**
     * One writer and {@code readers} readers, each on its own thread, pass {@code count} sequence
     * numbers. Every reader checks it sees exactly 0..count-1 in order, and that its slot still
     * holds the value after reading (so the writer never overwrote a slot before every reader
     * released it).
     */
    private static void hammer(IdleMode mode, int slots, int readers, long count) throws InterruptedException {
        Waker writerWaker = new Waker();
        Waker[] readerWakers = wakers(readers);
        InProcessChannel ch = new InProcessChannel(spec(slots, readers), writerWaker, readerWakers);
        AtomicReference<String> failure = new AtomicReference<>();
        long[] received = new long[readers];

        List<Thread> threads = new ArrayList<>();
        threads.add(new Thread(() -> {
            KilnIdleStrategy idle = new KilnIdleStrategy(mode, writerWaker);
            for (long s = 0; s < count; s++) {
                Long value = s; // a new object per sequence: a reader can tell an overwrite by identity
                while (!ch.offer(s, value)) {
                    if (failure.get() != null || Thread.currentThread().isInterrupted()) {
                        return;
                    }
                    idle.idle(0);
                }
                idle.idle(1);
            }
        }, "writer"));
        for (int r = 0; r < readers; r++) {
            int reader = r;
            threads.add(new Thread(() -> {
                KilnIdleStrategy idle = new KilnIdleStrategy(mode, readerWakers[reader]);
                for (long s = 0; s < count; s++) {
                    Object value;
                    while ((value = ch.poll(reader, s)) == NOT_READY) {
                        if (failure.get() != null || Thread.currentThread().isInterrupted()) {
                            return;
                        }
                        idle.idle(0);
                    }
                    idle.idle(1);
                    if (!(value instanceof Long seq) || seq != s) {
                        failure.compareAndSet(null, "reader " + reader + " expected " + s + ", got " + value);
                        return;
                    }
                    if ((s & 63) == 0) {
                        Thread.yield(); // let the writer run while this reader holds the slot
                    }
                    Object again = ch.poll(reader, s);
                    if (again != value) {
                        failure.compareAndSet(null, "reader " + reader + ": slot of " + s
                                + " was overwritten before release with " + again);
                        return;
                    }
                    ch.release(reader, s);
                    received[reader]++;
                }
            }, "reader-" + r));
        }
        if (!runAll(threads)) {
            failure.compareAndSet(null, "threads did not finish: " + ch + ", received " + Arrays.toString(received));
        }
        assertNull(failure.get());
        for (int r = 0; r < readers; r++) {
            assertEquals(count, received[r], "reader " + r);
        }
    }

    @Test
    @Timeout(value = 5, unit = TimeUnit.MINUTES)
    void batchedWritesAndReleasesLoseNoWakeUp() throws InterruptedException {
        batchHammer(4, 2, 300_000);
    }

    @Test
    @Timeout(value = 5, unit = TimeUnit.MINUTES)
    void batchedWritesOnOneSlotLoseNoWakeUp() throws InterruptedException {
        batchHammer(1, 1, 100_000);
    }

    @Test
    @Timeout(60)
    void writeIsUnseenUntilPublish() {
        Waker[] readerWakers = wakers(1);
        InProcessChannel ch = new InProcessChannel(spec(3, 1), new Waker(), readerWakers);
        assertTrue(ch.batches());
        assertTrue(ch.write(0, "a"));
        assertTrue(ch.write(1, "b"));
        assertSame(NOT_READY, ch.poll(0, 0), "written, not published");
        readerWakers[0].arm();
        ch.publish();
        assertFalse(readerWakers[0].isArmed(), "publish woke the reader that announced it sleeps");
        assertEquals("a", ch.poll(0, 0));
        assertEquals("b", ch.poll(0, 1));
        assertTrue(ch.write(2, "c"));
        assertFalse(ch.write(3, "d"), "three slots, none released");
        ch.release(0, 1); // one release for the batch 0..1
        assertTrue(ch.write(3, "d"));
        assertTrue(ch.write(4, "e"));
        assertFalse(ch.write(5, "f"));
    }

    /**
     * The batch protocol of actor loops, with parks that have no timeout, so a lost wake-up hangs the run (and fails
     * it at the deadline) instead of costing a park timeout: the writer writes batches of 1 to 8 values and publishes
     * once per batch; each reader reads, and releases once per batch of 1 to 8. Both publish or release what they
     * hold before they sleep, as a {@code GraphLoop} does. Every reader checks it sees exactly 0..count-1 in order,
     * unchanged until released.
     */
    private static void batchHammer(int slots, int readers, long count) throws InterruptedException {
        Waker writerWaker = new Waker();
        Waker[] readerWakers = wakers(readers);
        InProcessChannel ch = new InProcessChannel(spec(slots, readers), writerWaker, readerWakers);
        AtomicReference<String> failure = new AtomicReference<>();
        long[] received = new long[readers];
        List<Thread> threads = new ArrayList<>();
        threads.add(new Thread(() -> {
            java.util.SplittableRandom random = new java.util.SplittableRandom(1);
            long s = 0;
            while (s < count) {
                int batch = 1 + random.nextInt(8);
                int wrote = 0;
                while (wrote < batch && s < count && ch.write(s, Long.valueOf(s))) {
                    s++;
                    wrote++;
                }
                ch.publish();
                long next = s;
                if (wrote == 0 && !sleepUntil(writerWaker, () -> ch.isFree(next))) {
                    return;
                }
            }
        }, "writer"));
        for (int r = 0; r < readers; r++) {
            int reader = r;
            threads.add(new Thread(() -> {
                java.util.SplittableRandom random = new java.util.SplittableRandom(2 + reader);
                long s = 0;
                long released = 0; // sequences before this were released
                int batch = 1 + random.nextInt(8);
                Object[] held = new Object[8];
                while (s < count) {
                    Object value = ch.poll(reader, s);
                    if (value == NOT_READY) {
                        if (s > released) {
                            ch.release(reader, s - 1);
                            released = s;
                        }
                        long next = s;
                        if (!sleepUntil(readerWakers[reader], () -> ch.poll(reader, next) != NOT_READY)) {
                            return;
                        }
                        continue;
                    }
                    if (!(value instanceof Long seq) || seq != s) {
                        failure.compareAndSet(null, "reader " + reader + " expected " + s + ", got " + value);
                        return;
                    }
                    held[(int) (s - released)] = value;
                    s++;
                    received[reader]++;
                    if (s - released == batch) {
                        for (long k = released; k < s; k++) {
                            if (ch.poll(reader, k) != held[(int) (k - released)]) {
                                failure.compareAndSet(null, "reader " + reader + ": slot of " + k
                                        + " was overwritten before its release");
                                return;
                            }
                        }
                        ch.release(reader, s - 1);
                        released = s;
                        batch = 1 + random.nextInt(8);
                    }
                }
                ch.release(reader, s - 1);
            }, "reader-" + r));
        }
        if (!runAll(threads)) {
            failure.compareAndSet(null, "a wake-up was lost: threads still parked: " + ch + ", received "
                    + Arrays.toString(received));
        }
        assertNull(failure.get());
        for (int r = 0; r < readers; r++) {
            assertEquals(count, received[r], "reader " + r);
        }
    }

    /**
     * Starts the threads (daemons) and waits up to {@link #HAMMER_MS} for all of them; interrupts and reaps those left.
     *
     * @return whether every thread finished in time
     */
    private static boolean runAll(List<Thread> threads) throws InterruptedException {
        for (Thread t : threads) {
            t.setDaemon(true);
            t.start();
        }
        long deadline = System.currentTimeMillis() + HAMMER_MS;
        for (Thread t : threads) {
            t.join(Math.max(1, deadline - System.currentTimeMillis()));
        }
        if (threads.stream().noneMatch(Thread::isAlive)) {
            return true;
        }
        threads.forEach(Thread::interrupt);
        for (Thread t : threads) {
            t.join(10_000);
        }
        return false;
    }

    /**
     * Announces sleep on {@code waker}, re-checks, and parks with no timeout until {@code condition} holds: only a
     * peer's signal ends the park.
     *
     * @return false if the thread was interrupted (the run is over)
     */
    private static boolean sleepUntil(Waker waker, java.util.function.BooleanSupplier condition) {
        while (!condition.getAsBoolean()) {
            if (Thread.currentThread().isInterrupted()) {
                return false;
            }
            if (!waker.isArmed()) {
                waker.arm(); // then re-check before parking
            } else {
                LockSupport.park();
            }
        }
        waker.disarm();
        return true;
    }

    /**
     * A single thread plays the writer and every reader in a random order; a model of the
     * protocol predicts each result.
     *
     * @param slots   slot count
     * @param readers reader count
     * @param steps   who moves next: 0 the writer, r + 1 reader r (modulo the participants)
     */
    @Property(tries = 300)
    void randomInterleavingFollowsTheModel(@ForAll @IntRange(min = 1, max = 6) int slots,
                                           @ForAll @IntRange(min = 1, max = 4) int readers,
                                           @ForAll @Size(max = 400) List<@IntRange(min = 0, max = 20) Integer> steps) {
        InProcessChannel ch = channel(slots, readers);
        List<Object> published = new ArrayList<>();
        long[] next = new long[readers];      // each reader's next sequence
        boolean[] holding = new boolean[readers]; // polled next[r] and not yet released it
        for (int step : steps) {
            int who = step % (readers + 1);
            if (who == 0) {
                long seq = published.size();
                long minReleased = Arrays.stream(next).min().orElseThrow();
                boolean free = seq - minReleased < slots;
                Object value = new Object();
                assertEquals(free, ch.offer(seq, value), () -> "offer " + seq + ", readers at " + Arrays.toString(next));
                if (free) {
                    published.add(value);
                }
            } else {
                int r = who - 1;
                long seq = next[r];
                Object got = ch.poll(r, seq);
                if (seq < published.size()) {
                    assertSame(published.get((int) seq), got, () -> "reader " + r + " at " + seq);
                    if (holding[r]) {
                        ch.release(r, seq);
                        next[r]++;
                    }
                    holding[r] = !holding[r];
                } else {
                    assertSame(NOT_READY, got, () -> "reader " + r + " at " + seq);
                }
            }
        }
    }
}
