package dev.kiln.transport.gpu;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.compiler.ExecutionPlan.NcclSchedule;
import dev.kiln.graph.Transport;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.DeviceTensor;
import dev.kiln.transport.InProcessChannel;
import dev.kiln.transport.Waker;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

import static dev.kiln.transport.Channel.NOT_READY;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.GPU;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.expected;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.floats;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.read;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.spec;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.waitUntil;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.wakers;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Ranks are threads of this JVM over {@link CpuCommunicator}s; device memory is {@link SimulatedDeviceOps}'s. */
@Timeout(60)
class NcclChannelTest {

    /** Writer actor 1 is rank 0, reader actors 10 and 11 are ranks 1 and 2 (see {@link SameDeviceChannelTest#spec}). */
    static final NcclSchedule SCHEDULE = new NcclSchedule(List.of(1, 10, 11), List.of(List.of(), List.of(), List.of()));
    private static final Duration COMM_TIMEOUT = Duration.ofSeconds(20);

    private final SimulatedDeviceOps gpu = new SimulatedDeviceOps();
    private final List<Long> allocations = new ArrayList<>();

    @AfterEach
    void freeSources() {
        allocations.forEach(gpu::free);
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
        List<CpuCommunicator> comms = CpuCommunicator.create(3, COMM_TIMEOUT);
        InProcessChannel meta = meta(spec);
        Object error = new Object();
        int count = 20;
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(40);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        List<Thread> readers = new ArrayList<>();
        for (int r = 0; r < 2; r++) {
            int reader = r;
            readers.add(Thread.ofPlatform().start(() -> {
                try (NcclChannel ch = NcclChannel.reader(spec, SCHEDULE, meta, comms.get(reader + 1), reader, gpu, 1 + reader,
                        0, 0)) {
                    ch.warm();
                    for (long seq = 0; seq < count; seq++) {
                        Object v;
                        while ((v = ch.poll(reader, seq)) == NOT_READY) {
                            waitUntil(deadline);
                        }
                        if (seq == 7) {
                            assertSame(error, v);
                        } else if (seq == 8) {
                            assertEquals(null, v);
                        } else {
                            DeviceTensor t = (DeviceTensor) v;
                            assertSame(t, ch.poll(reader, seq), "a second poll receives nothing more");
                            assertEquals(1 + reader, t.device());
                            int n = 1 + (int) (seq % 4);
                            assertArrayEquals(seq % 2 == 0 ? new long[] {n} : new long[] {1, n}, t.shape());
                            assertArrayEquals(expected(seq * 10, n), read(gpu, t), "reader " + reader + " seq " + seq);
                        }
                        ch.release(reader, seq);
                    }
                } catch (Throwable t) {
                    failure.compareAndSet(null, t);
                    comms.get(reader + 1).abort();
                }
            }));
        }
        long sourceBytes = 0;
        // Closed after the readers: an in-process side channel hands them the writer's header memory by reference.
        NcclChannel w = NcclChannel.writer(spec, SCHEDULE, meta, comms.get(0), gpu, GPU, 0);
        try {
            w.warm();
            for (long seq = 0; seq < count && failure.get() == null; seq++) {
                int n = 1 + (int) (seq % 4);
                sourceBytes += 4L * n;
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
            w.close();
        }
        if (failure.get() != null) {
            throw new AssertionError(failure.get());
        }
        assertEquals(sourceBytes, gpu.allocatedBytes(), "the ends freed their slots and the warm-up buffer");
        assertEquals(0, gpu.liveEvents());
    }

    @Test
    void offerReturnsFalseWhileTheSideChannelIsFull() throws Exception {
        ChannelSpec spec = spec(Transport.NCCL, 2, 64, 1);
        NcclSchedule schedule = new NcclSchedule(List.of(1, 10), List.of(List.of(), List.of()));
        List<CpuCommunicator> comms = CpuCommunicator.create(2, COMM_TIMEOUT);
        InProcessChannel meta = meta(spec);
        CountDownLatch readTwo = new CountDownLatch(1);
        CountDownLatch releaseFirst = new CountDownLatch(1);
        AtomicReference<Throwable> failure = new AtomicReference<>();
        long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(40);
        Thread reader = Thread.ofPlatform().start(() -> {
            try (NcclChannel ch = NcclChannel.reader(spec, schedule, meta, comms.get(1), 0, gpu, 1, 0, 0)) {
                for (long seq = 0; seq < 3; seq++) {
                    Object v;
                    while ((v = ch.poll(0, seq)) == NOT_READY) {
                        waitUntil(deadline);
                    }
                    assertArrayEquals(expected(seq, 4), read(gpu, (DeviceTensor) v));
                    if (seq == 1) {
                        readTwo.countDown();
                        assertTrue(releaseFirst.await(40, TimeUnit.SECONDS));
                        ch.release(0, 0);
                    }
                }
            } catch (Throwable t) {
                failure.compareAndSet(null, t);
                comms.get(1).abort();
            }
        });
        try (NcclChannel w = NcclChannel.writer(spec, schedule, meta, comms.get(0), gpu, GPU, 0)) {
            assertTrue(w.offer(0, floats(gpu, allocations, 0, 0, 4)));
            assertTrue(w.offer(1, floats(gpu, allocations, 0, 1, 4)));
            assertTrue(readTwo.await(40, TimeUnit.SECONDS));
            DeviceTensor third = floats(gpu, allocations, 0, 2, 4);
            assertFalse(w.offer(2, third), "two slots, neither released");
            releaseFirst.countDown();
            while (!w.offer(2, third)) {
                waitUntil(deadline);
            }
            reader.join(TimeUnit.SECONDS.toMillis(50)); // before the writer end frees the headers it reads
            assertFalse(reader.isAlive());
        }
        if (failure.get() != null) {
            throw new AssertionError(failure.get());
        }
    }

    @Test
    void aTensorLargerThanASlotIsRefusedBeforeAnythingIsPublished() {
        ChannelSpec spec = spec(Transport.NCCL, 2, 16, 2);
        List<CpuCommunicator> comms = CpuCommunicator.create(3, COMM_TIMEOUT);
        InProcessChannel meta = meta(spec);
        try (NcclChannel w = NcclChannel.writer(spec, SCHEDULE, meta, comms.get(0), gpu, GPU, 0)) {
            DeviceTensor big = floats(gpu, allocations, 0, 0, 5);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> w.offer(0, big));
            assertTrue(e.getMessage().startsWith("channel c3 (NCCL): a F32[5] device tensor of 20 bytes does not fit its"
                    + " device slots of 16 bytes; raise CompileOptions.bufferBytes to at least 20"), e.getMessage());
            assertSame(NOT_READY, meta.poll(0, 0));
        }
    }

    @Test
    void anEndMustHoldItsParticipantsRank() {
        ChannelSpec spec = spec(Transport.NCCL, 2, 64, 2);
        List<CpuCommunicator> comms = CpuCommunicator.create(3, COMM_TIMEOUT);
        assertEquals("channel c3: this end is rank 0 of the plan's NCCL schedule, the communicator is rank 1",
                assertThrows(IllegalArgumentException.class,
                        () -> NcclChannel.writer(spec, SCHEDULE, meta(spec), comms.get(1), gpu, GPU, 0)).getMessage());
        NcclSchedule without = new NcclSchedule(List.of(1, 10), List.of(List.of(), List.of()));
        assertEquals("channel c3: participant 11 is no rank of the plan's NCCL schedule [1, 10]",
                assertThrows(IllegalArgumentException.class,
                        () -> NcclChannel.reader(spec, without, meta(spec), comms.get(1), 0, gpu, 1, 0, 0)).getMessage());
        assertEquals(0, gpu.allocatedBytes());
    }

    /** A warm-up is one 1-byte transfer per reader: without the writer's sends the readers' receives would time out. */
    @Test
    void warmCompletesOneTransferPerReader() throws Exception {
        ChannelSpec spec = spec(Transport.NCCL, 2, 64, 2);
        List<CpuCommunicator> comms = CpuCommunicator.create(3, COMM_TIMEOUT);
        InProcessChannel meta = meta(spec);
        List<NcclChannel> readers = List.of(
                NcclChannel.reader(spec, SCHEDULE, meta, comms.get(1), 0, gpu, 1, 0, 0),
                NcclChannel.reader(spec, SCHEDULE, meta, comms.get(2), 1, gpu, 2, 0, 0));
        AtomicReference<Throwable> failure = new AtomicReference<>();
        List<Thread> threads = new ArrayList<>();
        for (NcclChannel r : readers) {
            threads.add(Thread.ofPlatform().start(() -> {
                try {
                    r.warm();
                } catch (Throwable t) {
                    failure.compareAndSet(null, t);
                }
            }));
        }
        try (NcclChannel w = NcclChannel.writer(spec, SCHEDULE, meta, comms.get(0), gpu, GPU, 0)) {
            w.warm();
            for (Thread t : threads) {
                t.join(TimeUnit.SECONDS.toMillis(30));
                assertFalse(t.isAlive());
            }
            if (failure.get() != null) {
                throw new AssertionError(failure.get());
            }
            // Ranks 1 and 2 have nothing else: poll with no header published yet stays NOT_READY, no receive posted.
            assertSame(NOT_READY, readers.get(0).poll(0, 0));
        } finally {
            readers.forEach(NcclChannel::close);
        }
        assertEquals(0, gpu.allocatedBytes(), "slots and the writer's warm-up buffer are freed");
        assertEquals(0, gpu.liveEvents());
    }
}
