package dev.kiln.transport.gpu;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.compiler.ExecutionPlan.NcclSchedule;
import dev.kiln.graph.Transport;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.DeviceTensor;
import dev.kiln.tensor.Tensor;
import dev.kiln.transport.Channel;
import dev.kiln.transport.InProcessChannel;
import dev.kiln.transport.Waker;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;

import static dev.kiln.transport.Channel.NOT_READY;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.GPU;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.MEMORY;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.awaitAndRead;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.expected;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.floats;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.spec;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.waitUntil;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.wakers;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * Ranks over {@link SimulatedCommunicator}s, each on its own device of one simulated machine and enqueueing on that
 * device's default stream; the side channel is an {@link InProcessChannel}. Everything the channel does is enqueued,
 * so a test reads a received tensor only after synchronizing its stream.
 */
@Timeout(60)
class NcclChannelTest {

    /** Writer actor 1 is rank 0, reader actors 10 and 11 are ranks 1 and 2 (see {@link SameDeviceChannelTest#spec}). */
    static final NcclSchedule SCHEDULE = new NcclSchedule(List.of(1, 10, 11), List.of(List.of(), List.of(), List.of()));
    /** Writer actor 1 is rank 0, reader actor 10 rank 1. */
    private static final NcclSchedule PAIR = new NcclSchedule(List.of(1, 10), List.of(List.of(), List.of()));
    private static final Duration COMM_TIMEOUT = Duration.ofSeconds(20);

    private final SimulatedDeviceOps gpu = SimulatedDeviceOps.create(SimulatedGpus.of(3, MEMORY));
    private final List<Long> allocations = new ArrayList<>();
    private final List<Communicator> comms = new ArrayList<>();

    @AfterEach
    void freeSources() {
        comms.forEach(Communicator::close); // aborts whatever a failed test left pending, so that memory can be freed
        allocations.forEach(gpu::free);
        gpu.close();
    }

    /** Joins one rank per device given, rank r on {@code devices[r]}, and waits until all are ready. */
    private List<Communicator> join(int... devices) {
        byte[] id = gpu.newCommunicatorId();
        List<Communicator> ranks = new ArrayList<>();
        for (int r = 0; r < devices.length; r++) {
            ranks.add(gpu.joinCommunicator(devices.length, id, r, devices[r], 0));
        }
        comms.addAll(ranks);
        for (Communicator c : ranks) {
            c.awaitReady(COMM_TIMEOUT);
        }
        return ranks;
    }

    private static InProcessChannel meta(ChannelSpec spec) {
        return new InProcessChannel(spec, new Waker(), wakers(spec.readers().size()));
    }

    /**
     * Twenty values of changing shapes, an error record and a null among them, from rank 0 to ranks 1 and 2 on
     * their own threads through two slots, after warming; every byte and shape checked in order.
     */
    @Test
    void everyReaderReceivesEveryValueWithItsShapeInOrder() throws Exception {
        ChannelSpec spec = spec(Transport.NCCL, 2, 64, 2);
        List<Communicator> ranks = join(0, 1, 2);
        InProcessChannel meta = meta(spec);
        Object error = new Object();
        int count = 20;
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(40);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        List<Thread> readers = new ArrayList<>();
        for (int r = 0; r < 2; r++) {
            int reader = r;
            readers.add(Thread.ofPlatform().start(() -> {
                NcclChannel ch = NcclChannel.reader(spec, SCHEDULE, meta, ranks.get(reader + 1), reader, gpu, 1 + reader,
                        0, 0);
                try {
                    ch.warm();
                    for (long seq = 0; seq < count; seq++) {
                        Object v;
                        while ((v = ch.poll(reader, seq)) == NOT_READY) {
                            waitUntil(deadline);
                        }
                        if (seq == 7) {
                            assertSame(error, v);
                        } else if (seq == 8) {
                            assertNull(v);
                        } else {
                            DeviceTensor t = (DeviceTensor) v;
                            assertSame(t, ch.poll(reader, seq), "a second poll receives nothing more");
                            assertEquals(1 + reader, t.device());
                            int n = 1 + (int) (seq % 4);
                            assertArrayEquals(seq % 2 == 0 ? new long[] {n} : new long[] {1, n}, t.shape());
                            assertArrayEquals(expected(seq * 10, n), awaitAndRead(gpu, t), "reader " + reader + " seq " + seq);
                        }
                        ch.release(reader, seq);
                    }
                } catch (Throwable t) {
                    failure.compareAndSet(null, t);
                    ranks.get(reader + 1).abort(); // its pending receives end, so its slots can be freed
                } finally {
                    ch.close();
                }
            }));
        }
        // Closed after the readers: an in-process side channel hands them the writer's header memory by reference.
        NcclChannel w = NcclChannel.writer(spec, SCHEDULE, meta, ranks.get(0), gpu, GPU, 0);
        try {
            w.warm();
            for (long seq = 0; seq < count && failure.get() == null; seq++) {
                int n = 1 + (int) (seq % 4);
                DeviceTensor src = floats(gpu, allocations, 0, seq * 10, n);
                Object value = seq == 7 ? error : seq == 8 ? null : seq % 2 == 0 ? src
                        : new DeviceTensor(GPU, src.pointer(), DType.F32, 0, 1, n);
                while (!w.offer(seq, value)) {
                    waitUntil(deadline);
                }
            }
            for (Thread t : readers) {
                t.join(TimeUnit.SECONDS.toMillis(50));
                assertFalse(t.isAlive(), "reader stuck");
            }
        } finally {
            if (failure.get() != null) {
                ranks.get(0).abort();
            }
            w.close();
        }
        if (failure.get() != null) {
            throw new AssertionError(failure.get());
        }
        assertEquals(allocations.size() * GpuSlots.ALIGN, gpu.allocatedBytes(),
                "the ends freed their slots and the warm-up buffer; the sources are left");
        assertEquals(0, gpu.liveEvents());
    }

    /** Counts the sends a writer issues. */
    private static final class CountingSends implements Communicator {
        private final Communicator delegate;
        final AtomicInteger sends = new AtomicInteger();

        CountingSends(Communicator delegate) {
            this.delegate = delegate;
        }

        @Override
        public int rank() {
            return delegate.rank();
        }

        @Override
        public int size() {
            return delegate.size();
        }

        @Override
        public int device() {
            return delegate.device();
        }

        @Override
        public void awaitReady(Duration timeout) {
            delegate.awaitReady(timeout);
        }

        @Override
        public String asyncError() {
            return delegate.asyncError();
        }

        @Override
        public void send(long address, long bytes, int peer) {
            sends.incrementAndGet();
            delegate.send(address, bytes, peer);
        }

        @Override
        public void recv(long address, long bytes, int peer) {
            delegate.recv(address, bytes, peer);
        }

        @Override
        public void allReduce(long sendAddress, long recvAddress, long count, DType dtype) {
            delegate.allReduce(sendAddress, recvAddress, count, dtype);
        }

        @Override
        public void groupStart() {
            delegate.groupStart();
        }

        @Override
        public void groupEnd() {
            delegate.groupEnd();
        }

        @Override
        public void synchronize() {
            delegate.synchronize();
        }

        @Override
        public void abort() {
            delegate.abort();
        }

        @Override
        public boolean finish(Duration timeout) {
            return delegate.finish(timeout);
        }

        @Override
        public void close() {
            delegate.close();
        }
    }

    @Test
    void offerReturnsFalseWhileTheSideChannelIsFullAndSendsOnlyOnceAccepted() throws Exception {
        ChannelSpec spec = spec(Transport.NCCL, 2, 64, 1);
        List<Communicator> ranks = join(0, 1);
        CountingSends counted = new CountingSends(ranks.get(0));
        InProcessChannel meta = meta(spec);
        CountDownLatch readTwo = new CountDownLatch(1);
        CountDownLatch releaseFirst = new CountDownLatch(1);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(40);
        Thread reader = Thread.ofPlatform().start(() -> {
            NcclChannel ch = NcclChannel.reader(spec, PAIR, meta, ranks.get(1), 0, gpu, 1, 0, 0);
            try {
                for (long seq = 0; seq < 3; seq++) {
                    Object v;
                    while ((v = ch.poll(0, seq)) == NOT_READY) {
                        waitUntil(deadline);
                    }
                    assertArrayEquals(expected(seq, 4), awaitAndRead(gpu, (DeviceTensor) v));
                    if (seq == 1) {
                        readTwo.countDown();
                        assertTrue(releaseFirst.await(40, TimeUnit.SECONDS));
                        ch.release(0, 0);
                    }
                }
            } catch (Throwable t) {
                failure.compareAndSet(null, t);
                ranks.get(1).abort();
            } finally {
                ch.close();
            }
        });
        try (NcclChannel w = NcclChannel.writer(spec, PAIR, meta, counted, gpu, GPU, 0)) {
            assertTrue(w.offer(0, floats(gpu, allocations, 0, 0, 4)));
            assertTrue(w.offer(1, floats(gpu, allocations, 0, 1, 4)));
            assertTrue(readTwo.await(40, TimeUnit.SECONDS));
            DeviceTensor third = floats(gpu, allocations, 0, 2, 4);
            assertFalse(w.isFree(2));
            assertFalse(w.offer(2, third), "two slots, neither released");
            assertFalse(w.offer(2, third));
            assertEquals(2, counted.sends.get(), "nothing is sent for a value the side channel cannot take yet");
            releaseFirst.countDown();
            while (!w.offer(2, third)) {
                waitUntil(deadline);
            }
            assertEquals(3, counted.sends.get(), "one send per accepted value and reader");
            reader.join(TimeUnit.SECONDS.toMillis(50)); // before the writer end frees the headers it reads
            assertFalse(reader.isAlive());
        }
        if (failure.get() != null) {
            throw new AssertionError(failure.get());
        }
    }

    /** A side channel that refuses the first offer of each sequence although it said the slot was free. */
    private static final class RefusingOnce implements Channel {
        private final Channel delegate;
        private final Set<Long> refused = new HashSet<>();

        RefusingOnce(Channel delegate) {
            this.delegate = delegate;
        }

        @Override
        public ChannelSpec spec() {
            return delegate.spec();
        }

        @Override
        public boolean offer(long sequence, Object value) {
            return !refused.add(sequence) && delegate.offer(sequence, value);
        }

        @Override
        public boolean isFree(long sequence) {
            return delegate.isFree(sequence);
        }

        @Override
        public Object poll(int reader, long sequence) {
            return delegate.poll(reader, sequence);
        }

        @Override
        public void release(int reader, long sequence) {
            delegate.release(reader, sequence);
        }

        @Override
        public void close() {
            delegate.close();
        }
    }

    /** The sends of a sequence are issued once: a retry after the side channel refused the header only publishes. */
    @Test
    void aRetriedOfferDoesNotSendAgain() {
        ChannelSpec spec = spec(Transport.NCCL, 2, 64, 1);
        List<Communicator> ranks = join(0, 1);
        CountingSends counted = new CountingSends(ranks.get(0));
        RefusingOnce meta = new RefusingOnce(meta(spec));
        NcclChannel r = NcclChannel.reader(spec, PAIR, meta, ranks.get(1), 0, gpu, 1, 0, 0);
        try (NcclChannel w = NcclChannel.writer(spec, PAIR, meta, counted, gpu, GPU, 0)) {
            for (long seq = 0; seq < 4; seq++) {
                DeviceTensor src = floats(gpu, allocations, 0, 100 * seq, 4);
                assertFalse(w.offer(seq, src), "the side channel refuses the header once");
                assertSame(NOT_READY, r.poll(0, seq));
                assertTrue(w.offer(seq, src));
                assertEquals(seq + 1, counted.sends.get(), "sequence " + seq + " was sent once");
                assertArrayEquals(expected(100 * seq, 4), awaitAndRead(gpu, (DeviceTensor) r.poll(0, seq)),
                        "had the previous value been sent twice, this receive would have taken it again");
                r.release(0, seq);
            }
            gpu.synchronizeStream(GPU, 0);
            assertTrue(gpu.queryStream(GPU, 0), "no send is left waiting for a receive");
        } finally {
            r.close();
        }
    }

    /** A send that fails (the writer's communicator was aborted) publishes no header: no reader waits for the bytes. */
    @Test
    void aFailedSendPublishesNothing() {
        ChannelSpec spec = spec(Transport.NCCL, 2, 64, 1);
        List<Communicator> ranks = join(0, 1);
        InProcessChannel meta = meta(spec);
        NcclChannel r = NcclChannel.reader(spec, PAIR, meta, ranks.get(1), 0, gpu, 1, 0, 0);
        try (NcclChannel w = NcclChannel.writer(spec, PAIR, meta, ranks.get(0), gpu, GPU, 0)) {
            ranks.get(0).abort();
            DeviceTensor src = floats(gpu, allocations, 0, 0, 4);
            assertEquals("simulated NCCL rank 0 is aborted",
                    assertThrows(IllegalStateException.class, () -> w.offer(0, src)).getMessage());
            assertSame(NOT_READY, meta.poll(0, 0));
            assertSame(NOT_READY, r.poll(0, 0));
            assertTrue(gpu.queryStream(1, 0), "the reader posted no receive");
        } finally {
            r.close();
        }
    }

    @Test
    void aTensorLargerThanASlotIsRefusedBeforeAnythingIsPublished() {
        ChannelSpec spec = spec(Transport.NCCL, 2, 16, 2);
        List<Communicator> ranks = join(0, 1, 2);
        CountingSends counted = new CountingSends(ranks.get(0));
        InProcessChannel meta = meta(spec);
        try (NcclChannel w = NcclChannel.writer(spec, SCHEDULE, meta, counted, gpu, GPU, 0)) {
            DeviceTensor big = floats(gpu, allocations, 0, 0, 5);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> w.offer(0, big));
            assertTrue(e.getMessage().startsWith("channel c3 (NCCL): a F32[5] device tensor of 20 bytes does not fit its"
                    + " device slots of 16 bytes; raise CompileOptions.bufferBytes to at least 20"), e.getMessage());
            assertSame(NOT_READY, meta.poll(0, 0));
            assertEquals(0, counted.sends.get());
        }
    }

    @Test
    void aTensorOnAnotherDeviceThanTheWritersIsRefusedBeforeAnythingIsSentOrPublished() {
        ChannelSpec spec = spec(Transport.NCCL, 2, 64, 1);
        List<Communicator> ranks = join(0, 1);
        CountingSends counted = new CountingSends(ranks.get(0));
        InProcessChannel meta = meta(spec);
        try (NcclChannel w = NcclChannel.writer(spec, PAIR, meta, counted, gpu, GPU, 0)) {
            DeviceTensor elsewhere = floats(gpu, allocations, 2, 0, 0, 4);
            assertEquals("channel c3 (NCCL) sends from gpu0, the writer's device, but the tensor is on gpu2: return"
                    + " tensors on the actor's own device (GpuContext.device())",
                    assertThrows(IllegalArgumentException.class, () -> w.offer(0, elsewhere)).getMessage());
            assertSame(NOT_READY, meta.poll(0, 0));
            assertEquals(0, counted.sends.get());
            assertTrue(gpu.queryStream(GPU, 0));
        }
    }

    /**
     * A writer on gpu1 offering a tensor on stream 0 sends after the producer's kernel on gpu1's default stream (from
     * a thread whose current device is gpu0), and a reader on gpu0 with stream 0 receives on gpu0's default stream.
     */
    @Test
    void streamZeroIsTheDefaultStreamOfTheEndsDevice() {
        assertEquals(0, gpu.currentDevice());
        ChannelSpec spec = spec(Transport.NCCL, 2, 64, 1);
        List<Communicator> ranks = join(1, 0);
        InProcessChannel meta = meta(spec);
        NcclChannel r = NcclChannel.reader(spec, PAIR, meta, ranks.get(1), 0, gpu, 0, 0, 0);
        try (NcclChannel w = NcclChannel.writer(spec, PAIR, meta, ranks.get(0), gpu, 1, 0)) {
            DeviceTensor src = floats(gpu, allocations, 1, 0, 0, 4);
            MemorySegment srcMemory = gpu.memory(src.pointer(), 16);
            gpu.pause();
            gpu.enqueue(1, 0, () -> srcMemory.setAtIndex(ValueLayout.JAVA_FLOAT, 0, 42));
            assertTrue(w.offer(0, src));
            DeviceTensor v = (DeviceTensor) r.poll(0, 0);
            assertEquals(0, v.device());
            assertEquals(0, v.stream());
            gpu.resume();
            assertArrayEquals(new float[] {42, 1, 2, 3}, awaitAndRead(gpu, v));
            r.release(0, 0);
            gpu.synchronizeStream(1, 0);
        } finally {
            r.close();
        }
    }

    @Test
    void anEndMustHoldItsParticipantsRank() {
        ChannelSpec spec = spec(Transport.NCCL, 2, 64, 2);
        List<Communicator> ranks = join(0, 1, 2);
        assertEquals("channel c3: this end is rank 0 of the plan's NCCL schedule, the communicator is rank 1",
                assertThrows(IllegalArgumentException.class,
                        () -> NcclChannel.writer(spec, SCHEDULE, meta(spec), ranks.get(1), gpu, GPU, 0)).getMessage());
        NcclSchedule without = new NcclSchedule(List.of(1, 10), List.of(List.of(), List.of()));
        assertEquals("channel c3: participant 11 is no rank of the plan's NCCL schedule [1, 10]",
                assertThrows(IllegalArgumentException.class,
                        () -> NcclChannel.reader(spec, without, meta(spec), ranks.get(1), 0, gpu, 1, 0, 0)).getMessage());
        assertEquals(0, gpu.allocatedBytes());
    }

    /** A warm-up is one 1-byte transfer per reader: the readers' receives wait until the writer's sends come. */
    @Test
    void warmCompletesOneTransferPerReader() {
        ChannelSpec spec = spec(Transport.NCCL, 2, 64, 2);
        List<Communicator> ranks = join(0, 1, 2);
        InProcessChannel meta = meta(spec);
        List<NcclChannel> readers = List.of(
                NcclChannel.reader(spec, SCHEDULE, meta, ranks.get(1), 0, gpu, 1, 0, 0),
                NcclChannel.reader(spec, SCHEDULE, meta, ranks.get(2), 1, gpu, 2, 0, 0));
        try (NcclChannel w = NcclChannel.writer(spec, SCHEDULE, meta, ranks.get(0), gpu, GPU, 0)) {
            readers.forEach(NcclChannel::warm);
            assertFalse(gpu.queryStream(1, 0), "warm enqueues; the receive waits for the writer's send");
            w.warm();
            ranks.forEach(Communicator::synchronize);
            for (int d = 0; d < 3; d++) {
                assertTrue(gpu.queryStream(d, 0));
            }
            // Ranks 1 and 2 have nothing else: poll with no header published yet stays NOT_READY, no receive posted.
            assertSame(NOT_READY, readers.get(0).poll(0, 0));
            assertTrue(gpu.queryStream(1, 0));
        } finally {
            readers.forEach(NcclChannel::close);
        }
        assertEquals(0, gpu.allocatedBytes(), "slots and the writer's warm-up buffer are freed");
        assertEquals(0, gpu.liveEvents());
    }
    /**
     * A header comes from the writer's process: one with an element type Kiln does not have, a negative dimension,
     * more than {@value GpuSlots#MAX_RANK} dimensions, or more bytes than a slot holds (also by overflow) is refused
     * with a message naming the channel and the sequence, before any receive is posted or view made.
     */
    @Test
    void aCorruptHeaderIsRefusedBeforeAnythingIsReceived() {
        ChannelSpec spec = spec(Transport.NCCL, 8, 64, 1);
        List<Communicator> ranks = join(0, 1);
        InProcessChannel meta = meta(spec);
        long f32 = DType.F32.ordinal();
        long[][] headers = {{99, 4}, {-1, 4}, {f32, -2, -8}, {f32, 1L << 40, 1L << 40}, {f32, 17}, new long[34]};
        String[] why = {
            "names element type 99, not one of the " + DType.values().length + " this Kiln has",
            "names element type -1, not one of the " + DType.values().length + " this Kiln has",
            "has dimension 0 of -2",
            "announces more than " + Long.MAX_VALUE + " bytes, a slot holds 64",
            "announces 68 bytes, a slot holds 64",
            "has 33 dimensions, more than 32"};
        try (NcclChannel r = NcclChannel.reader(spec, PAIR, meta, ranks.get(1), 0, gpu, 1, 0, 0)) {
            for (int i = 0; i < headers.length; i++) {
                long seq = i;
                try (Tensor header = Tensor.of(headers[i], headers[i].length)) {
                    assertTrue(meta.offer(seq, header));
                    IllegalStateException e = assertThrows(IllegalStateException.class, () -> r.poll(0, seq));
                    assertEquals("channel c3 (NCCL): the writer's header of sequence " + seq + " " + why[i],
                            e.getMessage());
                }
            }
            assertTrue(gpu.queryStream(1, 0), "no receive was posted");
        }
        assertEquals(0, gpu.allocatedBytes());
    }
}
