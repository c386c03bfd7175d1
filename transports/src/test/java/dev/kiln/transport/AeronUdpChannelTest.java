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
        return wire(readerCount, slots, slotBytes, writerGrowth, readerGrowth, peerTimeoutNs, false);
    }

    /** With {@code oneReaderHost}, every reader lives on one host and listens on one endpoint. */
    private Wiring wire(int readerCount, int slots, long slotBytes, boolean writerGrowth, boolean readerGrowth,
                        long peerTimeoutNs, boolean oneReaderHost) {
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
                writerGrowth, peerTimeoutNs));
        List<AeronUdpChannel> readers = new ArrayList<>();
        for (int r = 0; r < readerCount; r++) {
            readers.add(track(AeronUdpChannel.reader(readerHosts.get(r).aeron(), spec, route, r, MixedValues.codec(),
                    readerGrowth, peerTimeoutNs)));
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
        long deadline = System.nanoTime() + WAIT_NS;
        while (!condition.getAsBoolean()) {
            if (System.nanoTime() - deadline > 0) {
                fail("timed out waiting for: " + what);
            }
            LockSupport.parkNanos(100_000);
        }
    }

    /**
     * Offers {@code values.get(i)} as sequence i and reads every one back on every reader, checking
     * content exactly, all from this thread (each side has one owner thread: this one).
     */
    private static void transfer(Wiring w, List<?> values) {
        int n = values.size();
        int offered = 0;
        int[] read = new int[w.readers().size()];
        long deadline = System.nanoTime() + WAIT_NS;
        while (offered < n || java.util.Arrays.stream(read).anyMatch(r -> r < n)) {
            boolean progress = false;
            if (offered < n && w.writer().offer(offered, values.get(offered))) {
                offered++;
                progress = true;
            }
            for (int r = 0; r < read.length; r++) {
                if (read[r] < n) {
                    AeronUdpChannel reader = w.readers().get(r);
                    Object v = reader.poll(r, read[r]);
                    if (v != NOT_READY) {
                        Object expected = values.get(read[r]);
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
        Wiring w = wire(3, 4, 4096, true, true, PEER_TIMEOUT_NS, true);
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
                new ValueCodec(), true, timeout));
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

    @Test
    void checksItsArguments() {
        UdpHost h = host("h");
        ChannelSpec spec = ShmChannelTest.spec(2, 2, 64);
        AeronUdpChannel.Route oneReader = new AeronUdpChannel.Route("127.0.0.1:1", List.of("127.0.0.1:2"), 1, 2,
                1408, 65536);
        assertEquals("channel c3 has 2 readers, its route 1 reader endpoints", assertThrows(IllegalArgumentException.class,
                () -> AeronUdpChannel.writer(h.aeron(), spec, oneReader, new ValueCodec(), true, 1)).getMessage());
        AeronUdpChannel.Route twoReaders = new AeronUdpChannel.Route("127.0.0.1:1",
                List.of("127.0.0.1:2", "127.0.0.1:3"), 1, 3, 1408, 65536);
        assertEquals("channel c3 has readers 0 to 1, got reader 2", assertThrows(IllegalArgumentException.class,
                () -> AeronUdpChannel.reader(h.aeron(), spec, twoReaders, 2, new ValueCodec(), true, 1)).getMessage());
        assertEquals("peerTimeoutNs must be > 0, got 0", assertThrows(IllegalArgumentException.class,
                () -> AeronUdpChannel.writer(h.aeron(), spec, twoReaders, new ValueCodec(), true, 0)).getMessage());
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
