package dev.kiln.transport;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.Tensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.locks.LockSupport;
import java.util.function.BooleanSupplier;

import static dev.kiln.transport.Channel.NOT_READY;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * {@link AeronUdpChannel} between simulated hosts in this JVM: each host has its own embedded
 * media driver in its own directory, and they talk UDP over 127.0.0.1 on distinct ports.
 */
@Timeout(value = 3, unit = TimeUnit.MINUTES)
class AeronUdpChannelTest {

    /** Long enough that a slow start on a loaded machine never counts as a lost peer. */
    private static final long PEER_TIMEOUT_NS = TimeUnit.SECONDS.toNanos(20);
    private static final long WAIT_NS = TimeUnit.SECONDS.toNanos(60);
    private static final int DATA_STREAM = 1001;
    /** Below the data streams, which take one stream id per reader from DATA_STREAM up. */
    private static final int RELEASE_STREAM = 1000;
    /** Loopback takes jumbo datagrams: 8 KiB frames carry a 64 MiB value in about 8,200 frames. */
    private static final int MTU = 8192;
    private static final int TERM = 1 << 20;

    private Path dir;
    private final List<AutoCloseable> open = new ArrayList<>();
    private final List<UdpHost> hosts = new ArrayList<>();

    @BeforeEach
    void makeDirectory() throws IOException {
        dir = Files.createTempDirectory("kiln-aeron-test-");
    }

    @AfterEach
    void closeAll() throws Exception {
        Collections.reverse(open);
        Exception failure = null;
        for (AutoCloseable c : open) {
            try {
                c.close();
            } catch (Exception e) {
                if (failure == null) {
                    failure = e;
                } else {
                    failure.addSuppressed(e);
                }
            }
        }
        TempFiles.deleteTree(dir);
        if (failure != null) {
            throw failure;
        }
    }

    private UdpHost host(String name) {
        UdpHost host = UdpHost.start(name, dir);
        open.add(host);
        hosts.add(host);
        return host;
    }

    private <T extends AutoCloseable> T track(T resource) {
        open.add(resource);
        return resource;
    }

    /** The writer and its readers, each on its own host. */
    private record Wiring(UdpHost writerHost, AeronUdpChannel writer, List<UdpHost> readerHosts,
                          List<AeronUdpChannel> readers) {
    }

    private Wiring wire(int readerCount, int slots, long slotBytes, boolean writerGrowth, boolean readerGrowth,
                        long peerTimeoutNs) {
        return wire(readerCount, slots, slotBytes, writerGrowth, readerGrowth, peerTimeoutNs, false, null);
    }

    /**
     * With {@code oneReaderHost}, every reader lives on one host and listens on one endpoint; with a {@code key},
     * the channel authenticates its frames.
     */
    private Wiring wire(int readerCount, int slots, long slotBytes, boolean writerGrowth, boolean readerGrowth,
                        long peerTimeoutNs, boolean oneReaderHost, byte[] key) {
        ChannelSpec spec = ShmChannelTest.spec(slots, readerCount, slotBytes);
        UdpHost writerHost = host("writer");
        List<UdpHost> readerHosts = new ArrayList<>();
        List<String> endpoints = new ArrayList<>();
        for (int r = 0; r < readerCount; r++) {
            readerHosts.add(oneReaderHost && r > 0 ? readerHosts.get(0) : host("reader" + r));
            endpoints.add(oneReaderHost && r > 0 ? endpoints.get(0) : UdpHost.freeEndpoint());
        }
        AeronUdpChannel.Route route = new AeronUdpChannel.Route(UdpHost.freeEndpoint(), endpoints, DATA_STREAM,
                RELEASE_STREAM, MTU, TERM);
        AeronUdpChannel writer = track(AeronUdpChannel.writer(writerHost.aeron(), spec, route, MixedValues.codec(),
                writerGrowth, peerTimeoutNs, key));
        List<AeronUdpChannel> readers = new ArrayList<>();
        for (int r = 0; r < readerCount; r++) {
            readers.add(track(AeronUdpChannel.reader(readerHosts.get(r).aeron(), spec, route, r, MixedValues.codec(),
                    readerGrowth, peerTimeoutNs, key)));
        }
        List<AeronUdpChannel> all = new ArrayList<>(readers);
        all.add(writer);
        await("every side connected", () -> all.stream().allMatch(AeronUdpChannel::isConnected));
        return new Wiring(writerHost, writer, readerHosts, readers);
    }

    private Wiring wire(int readerCount, int slots, long slotBytes) {
        return wire(readerCount, slots, slotBytes, true, true, PEER_TIMEOUT_NS);
    }

    private static void await(String what, BooleanSupplier condition) {
        await(() -> what, condition);
    }

    private static void await(java.util.function.Supplier<String> what, BooleanSupplier condition) {
        long deadline = System.nanoTime() + WAIT_NS;
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() - deadline > 0) {
                fail("timed out waiting for: " + what.get());
            }
            LockSupport.parkNanos(100_000);
        }
    }

    /**
     * Offers {@code values.get(i)} as sequence i and reads every one back on every reader, checking
     * content exactly, all from this thread (each side has one owner thread: this one).
     */
    private static void transfer(Wiring w, List<?> values) {
        transfer(w, values, 0, () -> { });
    }

    /** As {@link #transfer(Wiring, List)} from sequence {@code first}, running {@code between} in every round. */
    private static void transfer(Wiring w, List<?> values, int first, Runnable between) {
        int n = first + values.size();
        int offered = first;
        int[] read = new int[w.readers().size()];
        java.util.Arrays.fill(read, first);
        long deadline = System.nanoTime() + WAIT_NS;
        while (offered < n || java.util.Arrays.stream(read).anyMatch(r -> r < n)) {
            between.run();
            boolean progress = false;
            if (offered < n && w.writer().offer(offered, values.get(offered - first))) {
                offered++;
                progress = true;
            }
            for (int r = 0; r < read.length; r++) {
                if (read[r] < n) {
                    AeronUdpChannel reader = w.readers().get(r);
                    Object v = reader.poll(r, read[r]);
                    if (v != NOT_READY) {
                        Object expected = values.get(read[r] - first);
                        assertTrue(MixedValues.equal(expected, v), "reader " + r + ", sequence " + read[r]
                                + ": expected " + MixedValues.describe(expected) + ", got " + MixedValues.describe(v));
                        reader.release(r, read[r]);
                        read[r]++;
                        progress = true;
                    }
                }
            }
            if (!progress) {
                if (System.nanoTime() - deadline > 0) {
                    fail("stuck: offered " + offered + " of " + n + ", read " + java.util.Arrays.toString(read));
                }
                LockSupport.parkNanos(50_000);
            }
        }
    }

    @Test
    @Timeout(120)
    void readersSharingOneEndpointEachGetTheirOwnStream() {
        Wiring w = wire(3, 4, 4096, true, true, PEER_TIMEOUT_NS, true, null);
        assertEquals(1, w.readers().stream().map(r -> r.route().readerEndpoints().get(r.side())).distinct().count());
        List<Object> values = new ArrayList<>();
        for (int i = 0; i < 50; i++) {
            values.add(i % 3 == 0 ? MixedValues.tensor(dev.kiln.tensor.DType.F32, i, 1000 + i) : "value-" + i);
        }
        transfer(w, values);
        assertNoClientErrors();
    }

    private void assertNoClientErrors() {
        for (UdpHost h : hosts) {
            assertEquals(List.of(), h.errors(), h + ": the Aeron client reported errors");
        }
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2})
    void carriesStringsIntsErrorsAndTensorsUpTo64MiBExactly(int readers) {
        Wiring w = wire(readers, 4, 2 << 20);
        Tensor mib = MixedValues.tensor(DType.F32, 7, (1 << 20) / 4);
        Tensor big = MixedValues.tensor(DType.I32, 11, (64 << 20) / 4);
        RemoteError error = new RemoteError("model", "forward", 5, "java.lang.IllegalStateException", "bad input",
                "trace\n\tat x.Y.forward(Y.java:1)");
        List<Object> values = java.util.Arrays.asList("hello", 42, null, -7L, mib, "ü€😀 ".repeat(1000), error,
                big, "after", 43, mib, 3.5);
        try {
            long start = System.nanoTime();
            transfer(w, values);
            System.out.printf("AeronUdpChannel, %d reader(s): %d values (two 1 MiB, one 64 MiB tensor) in %d ms%n",
                    readers, values.size(), TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start));
            for (int r = 0; r < readers; r++) {
                assertTrue(w.readers().get(r).slotCapacity(7 % 4) >= 64 << 20, "the 64 MiB tensor grew its slot");
            }
        } finally {
            mib.close();
            big.close();
        }
        assertNoClientErrors();
    }

    @Test
    void aTensorComesBackAsAViewOfTheReadersSlot() {
        Wiring w = wire(1, 2, 4096);
        try (Tensor t = Tensor.of(new float[] {1, 2, 3, 4}, 2, 2)) {
            assertTrue(w.writer().offer(0, t));
        }
        AeronUdpChannel reader = w.readers().getFirst();
        assertTrue(reader.awaitPublished(0, 0, WAIT_NS));
        Tensor view = assertInstanceOf(Tensor.class, reader.poll(0, 0));
        assertFalse(view.ownsMemory());
        assertEquals(List.of(2L, 2L), java.util.Arrays.stream(view.shape()).boxed().toList());
        assertEquals(4f, view.getFloat(3));
        assertSame(NOT_READY, reader.poll(0, 1), "nothing more was sent");
        reader.release(0, 0);
    }

    @Test
    void likeTensorsInASlotComeBackAsTheSameViewUntilTheSlotGrows() {
        Wiring w = wire(1, 1, 4096);
        AeronUdpChannel reader = w.readers().getFirst();
        Tensor first = null;
        long seq = 0;
        for (; seq < 4; seq++) {
            try (Tensor t = Tensor.of(new float[] {seq, 1, 2, 3}, 2, 2)) {
                assertTrue(w.writer().offer(seq, t));
            }
            assertTrue(reader.awaitPublished(0, seq, WAIT_NS));
            Tensor view = (Tensor) reader.poll(0, seq);
            assertEquals(seq, view.getFloat(0));
            if (first == null) {
                first = view;
            }
            assertSame(first, view, "a like tensor in the same slot: the same view object");
            reader.release(0, seq);
            assertTrue(w.writer().awaitReleased(seq + 1, WAIT_NS));
        }
        try (Tensor big = Tensor.allocate(DType.F32, 4096)) { // grows the slot: its old memory is freed
            assertTrue(w.writer().offer(seq, big));
        }
        assertTrue(reader.awaitPublished(0, seq, WAIT_NS));
        assertEquals(4096, ((Tensor) reader.poll(0, seq)).numel());
        reader.release(0, seq);
        assertTrue(w.writer().awaitReleased(++seq, WAIT_NS));
        try (Tensor t = Tensor.of(new float[] {42, 1, 2, 3}, 2, 2)) {
            assertTrue(w.writer().offer(seq, t));
        }
        assertTrue(reader.awaitPublished(0, seq, WAIT_NS));
        Tensor after = (Tensor) reader.poll(0, seq);
        assertEquals(42f, after.getFloat(0), "a fresh view of the grown slot, not the closed old one");
        reader.release(0, seq);
    }

    @Test
    void slotsGrowOneByOneAndKeepWorking() {
        Wiring w = wire(1, 2, 64);
        AeronUdpChannel reader = w.readers().getFirst();
        assertEquals(64, reader.slotCapacity(0));
        List<Object> values = new ArrayList<>();
        for (int size : new int[] {10, 100, 1_000, 10_000, 100_000, 1_000_000, 10}) {
            values.add("x".repeat(size));
        }
        values.add(bytes(3, 300_000));
        values.add(7);
        transfer(w, values);
        assertTrue(reader.slotCapacity(0) >= 100_008, "slot 0 took 100 KB: " + reader.slotCapacity(0));
        assertTrue(reader.slotCapacity(1) >= 1_000_008, "slot 1 took 1 MB: " + reader.slotCapacity(1));
        assertNoClientErrors();
    }

    @Test
    void withGrowthDisabledTheWriterRefusesALargeValueAndSendsNothing() {
        Wiring w = wire(1, 2, 256, false, false, PEER_TIMEOUT_NS);
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                () -> w.writer().offer(0, "y".repeat(1024)));
        assertEquals("channel c3 (node 5): a value of 1032 encoded bytes does not fit its slots of 256 bytes and slot"
                + " growth is disabled; raise CompileOptions.bufferBytes to at least 1032 or enable"
                + " CompileOptions.slotGrowth", e.getMessage());
        AeronUdpChannel reader = w.readers().getFirst();
        assertFalse(reader.awaitPublished(0, 0, TimeUnit.MILLISECONDS.toNanos(300)), "nothing was sent");
        transfer(w, List.of("small", "y".repeat(200)));
    }

    @Test
    void aReaderWithGrowthDisabledFailsOnAValueLargerThanItsSlot() {
        Wiring w = wire(1, 2, 256, true, false, PEER_TIMEOUT_NS);
        assertTrue(w.writer().offer(0, "z".repeat(1024)));
        AeronUdpChannel reader = w.readers().getFirst();
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> {
            long deadline = System.nanoTime() + WAIT_NS;
            while (reader.poll(0, 0) == NOT_READY && System.nanoTime() - deadline < 0) {
                LockSupport.parkNanos(100_000);
            }
        });
        assertEquals("channel c3 (node 5), reader 0: the writer sent a value of 1032 encoded bytes, larger than this"
                + " reader's slots of 256 bytes, and slot growth is disabled here; give the writer and its readers the"
                + " same CompileOptions.slotGrowth", e.getMessage());
    }

    @Test
    void theWriterWaitsUntilEveryReaderReleasedSequenceMinusSlots() {
        Wiring w = wire(2, 2, 4096);
        AeronUdpChannel writer = w.writer();
        AeronUdpChannel r0 = w.readers().get(0);
        AeronUdpChannel r1 = w.readers().get(1);
        assertTrue(writer.offer(0, "v0"));
        assertTrue(writer.offer(1, "v1"));
        for (int r = 0; r < 2; r++) {
            AeronUdpChannel reader = w.readers().get(r);
            assertTrue(reader.awaitPublished(r, 1, WAIT_NS));
            assertEquals("v0", reader.poll(r, 0));
            assertEquals("v1", reader.poll(r, 1));
        }
        long shortWait = TimeUnit.MILLISECONDS.toNanos(300);
        assertFalse(writer.awaitReleased(2, shortWait), "no reader released sequence 0");
        assertFalse(writer.offer(2, "v2"));
        r0.release(0, 0);
        assertFalse(writer.awaitReleased(2, shortWait), "reader 1 still holds sequence 0");
        assertFalse(writer.offer(2, "v2"));
        assertSame(NOT_READY, r0.poll(0, 2), "a refused offer sends nothing");
        r1.release(1, 0);
        assertTrue(writer.awaitReleased(2, WAIT_NS), "both readers released sequence 0");
        assertTrue(writer.offer(2, "v2"));
        assertFalse(writer.offer(3, "v3"), "sequence 1 is held by both readers");
        for (int r = 0; r < 2; r++) {
            AeronUdpChannel reader = w.readers().get(r);
            assertTrue(reader.awaitPublished(r, 2, WAIT_NS));
            assertEquals("v2", reader.poll(r, 2));
            reader.release(r, 1);
            reader.release(r, 2);
        }
        assertTrue(writer.awaitReleased(3, WAIT_NS));
        assertTrue(writer.offer(3, "v3"));
        assertNoClientErrors();
    }

    @Test
    void aBackPressuredOfferIsFinishedByOfferingTheSameSequenceAgain() {
        // 8 MiB through 1 MiB terms: the publication fills up mid-value and offer returns false.
        Wiring w = wire(1, 2, 64);
        AeronUdpChannel writer = w.writer();
        AeronUdpChannel reader = w.readers().getFirst();
        byte[] big = bytes(9, 8 << 20);
        boolean firstTry = writer.offer(0, big);
        assertFalse(firstTry, "8 MiB do not fit a 1 MiB term's window at once");
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> writer.offer(1, "next"));
        assertEquals("channel c3 (node 5): offer of sequence 1 while sequence 0 is still being sent; offer it again"
                + " until it returns true", e.getMessage());
        long deadline = System.nanoTime() + WAIT_NS;
        boolean sent = false;
        Object got = NOT_READY;
        while (!sent || got == NOT_READY) {
            sent = sent || writer.offer(0, "ignored: the encoded value is sent");
            if (got == NOT_READY) {
                got = reader.poll(0, 0);
            }
            assertTrue(System.nanoTime() - deadline < 0, "stuck");
            LockSupport.parkNanos(50_000);
        }
        assertTrue(MixedValues.equal(big, got));
        reader.release(0, 0);
        assertTrue(writer.awaitReleased(2, WAIT_NS));
        assertTrue(writer.offer(1, "next"));
        assertTrue(reader.awaitPublished(0, 1, WAIT_NS));
        assertEquals("next", reader.poll(0, 1));
    }

    private static byte[] bytes(long seed, int length) {
        byte[] b = new byte[length];
        for (int i = 0; i < length; i++) {
            b[i] = (byte) (seed * 7 + i * 13 + (i >>> 8));
        }
        return b;
    }

    @Test
    void aWriterThreadAndTwoReaderThreadsCarryMixedValues() throws InterruptedException {
        int count = 3_000;
        Wiring w = wire(2, 4, 4096);
        ConcurrentLinkedQueue<String> problems = new ConcurrentLinkedQueue<>();
        List<Thread> threads = new ArrayList<>();
        threads.add(new Thread(() -> {
            AeronUdpChannel writer = w.writer();
            for (long s = 0; s < count; s++) {
                Object v = MixedValues.of(s);
                try {
                    while (!writer.offer(s, v)) {
                        if (!writer.awaitReleased(s, WAIT_NS) && writer.lostPeer() != AeronUdpChannel.NO_PEER_LOST) {
                            problems.add("writer: " + writer.lossReason());
                            return;
                        }
                    }
                } finally {
                    MixedValues.dispose(v);
                }
            }
        }, "writer"));
        for (int r = 0; r < 2; r++) {
            int reader = r;
            threads.add(new Thread(() -> {
                AeronUdpChannel ch = w.readers().get(reader);
                for (long s = 0; s < count; s++) {
                    if (!ch.awaitPublished(reader, s, WAIT_NS)) {
                        problems.add("reader " + reader + ": sequence " + s + " did not arrive");
                        return;
                    }
                    Object expected = MixedValues.of(s);
                    Object v = ch.poll(reader, s);
                    if (!MixedValues.equal(expected, v)) {
                        problems.add("reader " + reader + ", sequence " + s + ": expected "
                                + MixedValues.describe(expected) + ", got " + MixedValues.describe(v));
                    }
                    MixedValues.dispose(expected);
                    ch.release(reader, s);
                }
            }, "reader" + r));
        }
        long start = System.nanoTime();
        threads.forEach(Thread::start);
        for (Thread t : threads) {
            t.join(TimeUnit.NANOSECONDS.toMillis(2 * WAIT_NS));
            assertFalse(t.isAlive(), t.getName() + " did not finish");
        }
        System.out.printf("AeronUdpChannel, writer and 2 reader threads: %d mixed values in %d ms%n", count,
                TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start));
        assertEquals(List.of(), List.copyOf(problems));
        assertNoClientErrors();
    }

    @ParameterizedTest
    @ValueSource(booleans = {false, true})
    void aReaderThatGoesAwayIsReportedToTheWriter(boolean wholeHost) {
        Wiring w = wire(1, 2, 4096, true, true, TimeUnit.SECONDS.toNanos(2));
        transfer(w, List.of("before"));
        AeronUdpChannel writer = w.writer();
        assertEquals(AeronUdpChannel.NO_PEER_LOST, writer.lostPeer());
        long start = System.nanoTime();
        if (wholeHost) {
            w.readerHosts().getFirst().close();
        } else {
            w.readers().getFirst().close();
        }
        await("the writer reports reader 0 lost", () -> writer.lostPeer() == 0);
        long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        System.out.println("AeronUdpChannel: reader " + (wholeHost ? "host" : "channel") + " closed, the writer knew"
                + " after " + ms + " ms: " + writer.lossReason());
        assertTrue(ms < 10_000, "detected within 10 s, took " + ms + " ms");
        String prefix = "channel c3 (node 5): the release stream of reader 0 ("
                + writer.route().readerEndpoints().getFirst() + ", from ";
        assertTrue(writer.lossReason().startsWith(prefix), writer.lossReason());
        if (!wholeHost) {
            assertTrue(writer.lossReason().endsWith(" closed at its end: the reader closed it"), writer.lossReason());
        }
        assertFalse(writer.isConnected());
        long waitStart = System.nanoTime();
        assertFalse(writer.awaitReleased(3, WAIT_NS), "sequence 1 is not released");
        assertTrue(System.nanoTime() - waitStart < TimeUnit.SECONDS.toNanos(1), "returned at once: the peer is lost");
        assertEquals(0, writer.lostPeer(), "a lost peer stays lost");
    }

    @Test
    void aWriterThatGoesAwayIsReportedToItsReaders() {
        Wiring w = wire(2, 2, 4096, true, true, TimeUnit.SECONDS.toNanos(2));
        transfer(w, List.of("before"));
        long start = System.nanoTime();
        w.writerHost().close();
        for (int r = 0; r < 2; r++) {
            AeronUdpChannel reader = w.readers().get(r);
            await("reader reports the writer lost", () -> reader.lostPeer() == AeronUdpChannel.WRITER);
            assertTrue(reader.lossReason().contains("writer"), reader.lossReason());
            assertFalse(reader.awaitPublished(r, 1, WAIT_NS), "returns at once: the writer is lost");
        }
        long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        System.out.println("AeronUdpChannel: writer gone, both readers knew after " + ms + " ms: "
                + w.readers().getFirst().lossReason());
        assertTrue(ms < 10_000, "detected within 10 s, took " + ms + " ms");
    }

    @Test
    void aReaderThatNeverComesIsLostAfterThePeerTimeout() {
        UdpHost writerHost = host("writer");
        long timeout = TimeUnit.SECONDS.toNanos(1);
        AeronUdpChannel.Route route = new AeronUdpChannel.Route(UdpHost.freeEndpoint(),
                List.of(UdpHost.freeEndpoint()), DATA_STREAM, RELEASE_STREAM, MTU, TERM);
        long start = System.nanoTime();
        AeronUdpChannel writer = track(AeronUdpChannel.writer(writerHost.aeron(), ShmChannelTest.spec(2, 1, 64), route,
                new ValueCodec(), true, timeout, null));
        assertEquals(AeronUdpChannel.NO_PEER_LOST, writer.lostPeer());
        assertFalse(writer.offer(0, "nobody listens"));
        await("reader 0 lost", () -> writer.lostPeer() == 0);
        long ms = TimeUnit.NANOSECONDS.toMillis(System.nanoTime() - start);
        assertTrue(ms >= 1_000, "not before the peer timeout: " + ms + " ms");
        assertTrue(writer.lossReason().startsWith("channel c3 (node 5): reader 0 at " + route.readerEndpoints().getFirst()
                + " was not connected for "), writer.lossReason());
        assertTrue(writer.lossReason().endsWith(" ms (peer timeout 1000 ms)"), writer.lossReason());
    }

    @Test
    void eachSideRefusesTheOtherSidesCalls() {
        Wiring w = wire(2, 2, 64);
        AeronUdpChannel writer = w.writer();
        AeronUdpChannel reader = w.readers().get(1);
        assertEquals(AeronUdpChannel.WRITER, writer.side());
        assertEquals(1, reader.side());
        assertTrue(reader.crossesProcesses());
        assertEquals("channel c3 (node 5): this is the writer side; only a reader side polls and releases",
                assertThrows(IllegalStateException.class, () -> writer.poll(0, 0)).getMessage());
        assertEquals("channel c3 (node 5): this is the side of reader 1; only the writer side offers",
                assertThrows(IllegalStateException.class, () -> reader.offer(0, "x")).getMessage());
        assertEquals("channel c3 (node 5): this is the side of reader 1, called for reader 0",
                assertThrows(IllegalStateException.class, () -> reader.poll(0, 0)).getMessage());
        assertEquals("channel c3 (node 5): offer of sequence 1, the next sequence is 0",
                assertThrows(IllegalStateException.class, () -> writer.offer(1, "x")).getMessage());
        assertEquals("channel c3 (node 5), reader 1: polled sequence 2 with 0 released and 2 slots; a sequence may be"
                        + " polled from its arrival until released",
                assertThrows(IllegalStateException.class, () -> reader.poll(1, 2)).getMessage());
        assertEquals("channel c3 (node 5), reader 1: released sequence 0 with 0 released and 0 arrived; release each"
                        + " arrived sequence once, in order",
                assertThrows(IllegalStateException.class, () -> reader.release(1, 0)).getMessage());
        reader.close();
        reader.close();
        assertEquals("channel c3 (node 5) is closed",
                assertThrows(IllegalStateException.class, () -> reader.poll(1, 0)).getMessage());
    }

    /** A fresh random key for an authenticated channel. */
    private static byte[] key() {
        byte[] key = new byte[32];
        new java.security.SecureRandom().nextBytes(key);
        return key;
    }

    @ParameterizedTest
    @ValueSource(ints = {1, 2})
    void anAuthenticatedChannelCarriesMixedValuesExactly(int readers) {
        Wiring w = wire(readers, 4, 4096, true, true, PEER_TIMEOUT_NS, false, key());
        List<Object> values = new ArrayList<>();
        for (int i = 0; i < 200; i++) {
            values.add(MixedValues.of(i));
        }
        Tensor mib = MixedValues.tensor(DType.F32, 3, (1 << 20) / 4); // 129 frames of 8 KiB
        values.add(mib);
        values.add("ü€😀 ".repeat(5000));
        try {
            transfer(w, values);
        } finally {
            mib.close();
            values.forEach(MixedValues::dispose);
        }
        List<AeronUdpChannel> sides = new ArrayList<>(w.readers());
        sides.add(w.writer());
        for (AeronUdpChannel side : sides) {
            assertTrue(side.authenticated());
            assertEquals(0, side.forgedFrames(), side + ": nothing was forged");
            assertEquals(0, side.replayedFrames(), side + ": nothing was replayed");
        }
        assertNoClientErrors();
    }

    /** What an attacker sends: to the reader's data stream, or to the writer's release stream. */
    private record Attack(boolean toReader, byte[] bytes) {
    }

    /**
     * An attacker with a media driver of its own sends to the reader's data stream and to the writer's release
     * stream, before and while values flow: random frames (forged), frames it recorded off the wire with one bit
     * flipped in the header, the tag or the chunk (mutated), and recorded frames as they were (replayed, from its
     * own Aeron session). Each is dropped and counted on the side it reached, and every value arrives exact.
     */
    @Test
    void forgedMutatedAndReplayedFramesAreDroppedAndCountedAndValuesStillArriveExact() {
        Wiring w = wire(1, 4, 4096, true, true, PEER_TIMEOUT_NS, false, key());
        AeronUdpChannel writer = w.writer();
        AeronUdpChannel reader = w.readers().getFirst();
        String readerEndpoint = writer.route().readerEndpoints().getFirst();
        String writerEndpoint = writer.route().writerEndpoint();
        // What an on-path attacker sees: taps on both streams, polled all along (a tap holds Aeron's flow control).
        io.aeron.Subscription dataTap = track(w.readerHosts().getFirst().aeron()
                .addSubscription("aeron:udp?endpoint=" + readerEndpoint, DATA_STREAM));
        io.aeron.Subscription releaseTap = track(w.writerHost().aeron()
                .addSubscription("aeron:udp?endpoint=" + writerEndpoint, RELEASE_STREAM));
        UdpHost attacker = host("attacker");
        io.aeron.ExclusivePublication toReader = track(attacker.aeron().addExclusivePublication("aeron:udp?endpoint="
                + readerEndpoint + "|mtu=" + MTU + "|term-length=" + TERM, DATA_STREAM));
        io.aeron.ExclusivePublication toWriter = track(attacker.aeron().addExclusivePublication("aeron:udp?endpoint="
                + writerEndpoint + "|term-length=65536", RELEASE_STREAM));
        List<byte[]> seenData = new ArrayList<>();
        List<byte[]> seenReleases = new ArrayList<>();
        Runnable tap = () -> { // records the channel's own frames, not the attacker's
            dataTap.poll((b, o, l, h) -> {
                if (h.sessionId() != toReader.sessionId()) {
                    seenData.add(copy(b, o, l));
                }
            }, 64);
            releaseTap.poll((b, o, l, h) -> {
                if (h.sessionId() != toWriter.sessionId()) {
                    seenReleases.add(copy(b, o, l));
                }
            }, 64);
        };
        await("the attacker's streams connected", () -> toReader.isConnected() && toWriter.isConnected());

        java.util.Random random = new java.util.Random(16);
        List<Attack> attacks = new ArrayList<>();
        for (int length : new int[] {1, 47, 48, 100, 4000}) {
            attacks.add(new Attack(true, randomBytes(random, length))); // forged data, before any real frame
        }
        for (int length : new int[] {16, 32, 31}) {
            attacks.add(new Attack(false, randomBytes(random, length))); // forged releases
        }
        sendAll(attacks, toReader, toWriter, () -> {
            tap.run();
            reader.pump();
            writer.pump();
        });
        await("the early forgeries arrived", () -> {
            reader.pump();
            writer.pump();
            return reader.forgedFrames() == 5 && writer.forgedFrames() == 3;
        });

        List<Object> first = new ArrayList<>();
        for (int i = 0; i < 20; i++) {
            first.add(i % 5 == 0 ? "z".repeat(20_000 + i) : MixedValues.of(i)); // some values span several frames
        }
        transfer(w, first, 0, tap);
        assertTrue(seenData.size() > 20 && seenReleases.size() > 5, seenData.size() + " frames, " + seenReleases.size()
                + " releases seen");

        attacks.clear();
        int forgedData = 0;
        int replayedData = 0;
        int forgedReleases = 0;
        int replayedReleases = 0;
        for (int i = 0; i < 6; i++) {
            byte[] frame = seenData.get(random.nextInt(seenData.size()));
            attacks.add(new Attack(true, frame.clone()));
            replayedData++;
            for (int at : new int[] {0, 36, frame.length - 1}) { // the header's sequence, the tag, the chunk's end
                byte[] mutated = frame.clone();
                mutated[at] ^= (byte) (1 << random.nextInt(8));
                attacks.add(new Attack(true, mutated));
                forgedData++;
            }
            byte[] release = seenReleases.get(random.nextInt(seenReleases.size()));
            attacks.add(new Attack(false, release.clone()));
            replayedReleases++;
            byte[] bigger = release.clone();
            bigger[7] ^= 0x40; // a far larger released count, which would let the writer overrun the reader's slots
            attacks.add(new Attack(false, bigger));
            forgedReleases++;
        }
        java.util.Collections.shuffle(attacks, random);
        List<Object> second = new ArrayList<>();
        for (int i = 20; i < 60; i++) {
            second.add(i % 7 == 0 ? "y".repeat(30_000 + i) : MixedValues.of(i));
        }
        java.util.Iterator<Attack> next = attacks.iterator();
        transfer(w, second, 20, () -> {
            tap.run();
            if (next.hasNext()) {
                Attack a = next.next();
                offer(a.toReader() ? toReader : toWriter, a.bytes(), tap);
            }
        });
        assertFalse(next.hasNext(), "every attack went out while values flowed");
        int expectForgedData = 5 + forgedData;
        int expectForgedReleases = 3 + forgedReleases;
        int expectReplayedData = replayedData;
        int expectReplayedReleases = replayedReleases;
        await(() -> "every attack dropped and counted; reader: " + reader.forgedFrames() + " forged, "
                + reader.replayedFrames() + " replayed, expected " + expectForgedData + " and " + expectReplayedData
                + "; writer: " + writer.forgedFrames() + " and " + writer.replayedFrames() + ", expected "
                + expectForgedReleases + " and " + expectReplayedReleases, () -> {
            tap.run();
            reader.pump();
            writer.pump();
            return reader.forgedFrames() == expectForgedData && reader.replayedFrames() == expectReplayedData
                    && writer.forgedFrames() == expectForgedReleases && writer.replayedFrames() == expectReplayedReleases;
        });
        assertEquals(AeronUdpChannel.NO_PEER_LOST, reader.lostPeer());
        assertEquals(AeronUdpChannel.NO_PEER_LOST, writer.lostPeer());
        transfer(w, List.of("after", 61), 60, tap); // and the channel goes on
        assertNoClientErrors();
    }

    /** The contrast: without authentication, one datagram from anyone who can reach the port fails the channel. */
    @Test
    void withoutAuthenticationOneForgedFrameFailsTheChannel() {
        Wiring w = wire(1, 4, 4096);
        AeronUdpChannel reader = w.readers().getFirst();
        transfer(w, List.of("before"));
        UdpHost attacker = host("attacker");
        io.aeron.ExclusivePublication toReader = track(attacker.aeron().addExclusivePublication("aeron:udp?endpoint="
                + w.writer().route().readerEndpoints().getFirst(), DATA_STREAM));
        await("the attacker's stream connected", toReader::isConnected);
        offer(toReader, randomBytes(new java.util.Random(1), 64), () -> { });
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> {
            long deadline = System.nanoTime() + WAIT_NS;
            while (reader.poll(0, 1) == NOT_READY) {
                assertTrue(System.nanoTime() - deadline < 0, "the forged frame never arrived");
                LockSupport.parkNanos(100_000);
            }
        });
        assertTrue(e.getMessage().contains("a channel has one writer and its stream may not be replaced"),
                e.getMessage());
        assertEquals(0, reader.forgedFrames(), "nothing is counted without authentication");
    }

    private static byte[] copy(org.agrona.DirectBuffer buffer, int offset, int length) {
        byte[] b = new byte[length];
        buffer.getBytes(offset, b);
        return b;
    }

    private static byte[] randomBytes(java.util.Random random, int length) {
        byte[] b = new byte[length];
        random.nextBytes(b);
        return b;
    }

    private static void sendAll(List<Attack> attacks, io.aeron.ExclusivePublication toReader,
                                io.aeron.ExclusivePublication toWriter, Runnable meanwhile) {
        for (Attack a : attacks) {
            offer(a.toReader() ? toReader : toWriter, a.bytes(), meanwhile);
        }
    }

    /** Offers one message, retrying while the publication is back-pressured; {@code meanwhile} keeps others polling. */
    private static void offer(io.aeron.ExclusivePublication publication, byte[] message, Runnable meanwhile) {
        org.agrona.concurrent.UnsafeBuffer buffer = new org.agrona.concurrent.UnsafeBuffer(message);
        await("the attacker's message went out", () -> {
            meanwhile.run();
            return publication.offer(buffer, 0, message.length) > 0;
        });
    }

    @Test
    void checksItsArguments() {
        UdpHost h = host("h");
        ChannelSpec spec = ShmChannelTest.spec(2, 2, 64);
        AeronUdpChannel.Route oneReader = new AeronUdpChannel.Route("127.0.0.1:1", List.of("127.0.0.1:2"), 1, 2,
                1408, 65536);
        assertEquals("channel c3 has 2 readers, its route 1 reader endpoints", assertThrows(IllegalArgumentException.class,
                () -> AeronUdpChannel.writer(h.aeron(), spec, oneReader, new ValueCodec(), true, 1, null)).getMessage());
        AeronUdpChannel.Route twoReaders = new AeronUdpChannel.Route("127.0.0.1:1",
                List.of("127.0.0.1:2", "127.0.0.1:3"), 1, 3, 1408, 65536);
        assertEquals("channel c3 has readers 0 to 1, got reader 2", assertThrows(IllegalArgumentException.class,
                () -> AeronUdpChannel.reader(h.aeron(), spec, twoReaders, 2, new ValueCodec(), true, 1, null)).getMessage());
        assertEquals("peerTimeoutNs must be > 0, got 0", assertThrows(IllegalArgumentException.class,
                () -> AeronUdpChannel.writer(h.aeron(), spec, twoReaders, new ValueCodec(), true, 0, null)).getMessage());
        assertEquals("channel c3: a key needs at least 16 bytes, got 15", assertThrows(IllegalArgumentException.class,
                () -> AeronUdpChannel.writer(h.aeron(), spec, twoReaders, new ValueCodec(), true, 1, new byte[15]))
                .getMessage());
        assertEquals("writerEndpoint: 'localhost' is not host:port", assertThrows(IllegalArgumentException.class,
                () -> new AeronUdpChannel.Route("localhost", List.of("127.0.0.1:2"), 1, 2, 1408, 65536)).getMessage());
        assertEquals("releaseStreamId 2 must lie outside the data streams 1 to 2 (one per reader)", assertThrows(
                IllegalArgumentException.class, () -> new AeronUdpChannel.Route("127.0.0.1:1",
                        List.of("127.0.0.1:2", "127.0.0.1:3"), 1, 2, 1408, 65536)).getMessage());
        assertEquals("mtuLength must be a multiple of 32 from 128 to 65504, got 1500", assertThrows(
                IllegalArgumentException.class,
                () -> new AeronUdpChannel.Route("127.0.0.1:1", List.of("127.0.0.1:2"), 1, 2, 1500, 65536)).getMessage());
        assertEquals("termLength must be a power of two from 64 KiB to 1 GiB, got 100000", assertThrows(
                IllegalArgumentException.class,
                () -> new AeronUdpChannel.Route("127.0.0.1:1", List.of("127.0.0.1:2"), 1, 2, 1408, 100_000)).getMessage());
    }
}
