package dev.kiln.transport.gpu;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.graph.Transport;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.DeviceTensor;
import dev.kiln.tensor.Tensor;
import dev.kiln.transport.Waker;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;

import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;
import java.util.stream.IntStream;

import static dev.kiln.transport.Channel.NOT_READY;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(60)
class SameDeviceChannelTest {

    static final int GPU = 0;
    /** Memory of each simulated device: sparse, so only what is written costs anything. */
    static final long MEMORY = 64L << 20;
    private final SimulatedDeviceOps gpu = SimulatedDeviceOps.create(SimulatedGpus.of(2, MEMORY));
    private final List<Long> allocations = new ArrayList<>();

    static ChannelSpec spec(Transport transport, int slots, long slotBytes, int readers) {
        return new ChannelSpec(3, 5, 1, IntStream.range(10, 10 + readers).boxed().toList(), slots, slotBytes,
                transport, "test");
    }

    static Waker[] wakers(int n) {
        Waker[] w = new Waker[n];
        Arrays.setAll(w, i -> new Waker());
        return w;
    }

    private SameDeviceChannel channel(int slots, long slotBytes, long... readerStreams) {
        return new SameDeviceChannel(spec(Transport.GPU_SAME_DEVICE, slots, slotBytes, readerStreams.length), gpu, GPU,
                readerStreams, new Waker(), wakers(readerStreams.length));
    }

    /** A device tensor F32[n] on {@link #GPU} and {@code stream} holding {@code base, base + 1, ...}. */
    static DeviceTensor floats(SimulatedDeviceOps gpu, List<Long> owned, long stream, float base, int n) {
        return floats(gpu, owned, GPU, stream, base, n);
    }

    /** A device tensor F32[n] on {@code device} and {@code stream} holding {@code base, base + 1, ...}. */
    static DeviceTensor floats(SimulatedDeviceOps gpu, List<Long> owned, int device, long stream, float base, int n) {
        long p = gpu.allocate(device, 4L * n);
        owned.add(p);
        MemorySegment m = gpu.memory(p, 4L * n);
        for (int i = 0; i < n; i++) {
            m.setAtIndex(ValueLayout.JAVA_FLOAT, i, base + i);
        }
        return new DeviceTensor(device, p, DType.F32, stream, n);
    }

    /** What the tensor's memory holds now, whatever its stream has still to do. */
    static float[] read(SimulatedDeviceOps gpu, DeviceTensor t) {
        return gpu.memory(t.pointer(), t.byteSize()).toArray(ValueLayout.JAVA_FLOAT);
    }

    /** What the tensor holds once its stream has run everything issued so far, as a kernel on it would see it. */
    static float[] awaitAndRead(SimulatedDeviceOps gpu, DeviceTensor t) {
        gpu.synchronizeStream(t.device(), t.stream());
        return read(gpu, t);
    }

    static float[] expected(float base, int n) {
        float[] f = new float[n];
        for (int i = 0; i < n; i++) {
            f[i] = base + i;
        }
        return f;
    }

    @AfterEach
    void freeSources() {
        allocations.forEach(gpu::free);
        gpu.close();
    }

    @Test
    void everyReaderGetsTheExactBytesInItsOwnSlotOnItsStream() {
        long s0 = gpu.createStream(GPU);
        long s1 = gpu.createStream(GPU);
        try (SameDeviceChannel ch = channel(3, 64, s0, s1)) {
            DeviceTensor src = floats(gpu, allocations, 0, 0, 4);
            for (long seq = 0; seq < 10; seq++) {
                gpu.synchronizeStream(GPU, 0); // the host writes the source: the last copy from it must have run
                gpu.memory(src.pointer(), 16).setAtIndex(ValueLayout.JAVA_FLOAT, 0, seq * 100);
                assertTrue(ch.offer(seq, src));
                for (int r = 0; r < 2; r++) {
                    DeviceTensor v = (DeviceTensor) ch.poll(r, seq);
                    assertEquals(GPU, v.device());
                    assertEquals(DType.F32, v.dtype());
                    assertArrayEquals(new long[] {4}, v.shape());
                    assertEquals(r == 0 ? s0 : s1, v.stream());
                    assertNotEquals(src.pointer(), v.pointer(), "a copy, not the writer's memory");
                    assertArrayEquals(new float[] {seq * 100, 1, 2, 3}, awaitAndRead(gpu, v));
                    ch.release(r, seq);
                }
            }
        } finally {
            gpu.destroyStream(s0);
            gpu.destroyStream(s1);
        }
    }

    @Test
    void slotsCycleAndAReaderGetsTheSameViewForALikeTensor() {
        try (SameDeviceChannel ch = channel(2, 64, 0, 0)) {
            DeviceTensor src = floats(gpu, allocations, 0, 1, 4);
            List<DeviceTensor> seen = new ArrayList<>();
            for (long seq = 0; seq < 4; seq++) {
                assertTrue(ch.offer(seq, src));
                seen.add((DeviceTensor) ch.poll(0, seq));
                DeviceTensor other = (DeviceTensor) ch.poll(1, seq);
                assertNotEquals(seen.getLast().pointer(), other.pointer(), "readers do not share slots");
                ch.release(0, seq);
                ch.release(1, seq);
            }
            assertNotEquals(seen.get(0).pointer(), seen.get(1).pointer());
            assertSame(seen.get(0), seen.get(2), "slot 0 again, same dtype and shape: the same view");
            assertSame(seen.get(1), seen.get(3));
            DeviceTensor reshaped = new DeviceTensor(GPU, src.pointer(), DType.F32, 0, 2, 2);
            assertTrue(ch.offer(4, reshaped));
            DeviceTensor v = (DeviceTensor) ch.poll(0, 4);
            assertEquals(seen.get(0).pointer(), v.pointer());
            assertArrayEquals(new long[] {2, 2}, v.shape());
            assertArrayEquals(expected(1, 4), awaitAndRead(gpu, v));
        }
    }

    @Test
    void offerReturnsFalseUntilEveryReaderReleasedTheSlot() {
        try (SameDeviceChannel ch = channel(2, 64, 0, 0)) {
            DeviceTensor src = floats(gpu, allocations, 0, 0, 4);
            assertTrue(ch.offer(0, src));
            assertTrue(ch.offer(1, src));
            assertFalse(ch.offer(2, src), "both slots hold unreleased sequences");
            ch.poll(0, 0);
            ch.release(0, 0);
            assertFalse(ch.offer(2, src), "reader 1 still holds sequence 0");
            assertSame(NOT_READY, ch.poll(1, 2));
            ch.poll(1, 0);
            ch.release(1, 0);
            assertTrue(ch.offer(2, src));
        }
    }

    @Test
    void aTensorLargerThanASlotIsRefusedWithTheOptionAndNothingIsPublished() {
        try (SameDeviceChannel ch = channel(2, 16, 0)) {
            DeviceTensor big = floats(gpu, allocations, 0, 0, 5);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> ch.offer(0, big));
            assertEquals("channel c3 (GPU_SAME_DEVICE): a F32[5] device tensor of 20 bytes does not fit its device"
                    + " slots of 16 bytes; raise CompileOptions.bufferBytes to at least 20 (GPU slots are allocated"
                    + " once, at compile time, and do not grow: CompileOptions.slotGrowth applies to host channels)",
                    e.getMessage());
            assertSame(NOT_READY, ch.poll(0, 0));
            DeviceTensor fits = floats(gpu, allocations, 0, 7, 4);
            assertTrue(ch.offer(0, fits), "the same sequence can still be offered");
            assertArrayEquals(expected(7, 4), awaitAndRead(gpu, (DeviceTensor) ch.poll(0, 0)));
        }
    }

    @Test
    void hostTensorsAreRefused() {
        try (SameDeviceChannel ch = channel(2, 64, 0);
             Tensor host = Tensor.of(new float[] {1, 2})) {
            assertTrue(assertThrows(IllegalArgumentException.class, () -> ch.offer(0, host)).getMessage()
                    .contains("a host Tensor cannot go through it"));
            assertSame(NOT_READY, ch.poll(0, 0));
        }
    }

    @Test
    void aTensorOnAnotherDeviceThanTheWritersIsRefusedAndNothingIsPublished() {
        try (SameDeviceChannel ch = channel(2, 64, 0)) {
            DeviceTensor elsewhere = floats(gpu, allocations, 1, 0, 0, 2);
            assertEquals("channel c3 (GPU_SAME_DEVICE) sends from gpu0, the writer's device, but the tensor is on gpu1:"
                    + " return tensors on the actor's own device (GpuContext.device())",
                    assertThrows(IllegalArgumentException.class, () -> ch.offer(0, elsewhere)).getMessage());
            assertSame(NOT_READY, ch.poll(0, 0));
            assertTrue(gpu.queryStream(1, 0) && gpu.queryStream(GPU, 0), "nothing was enqueued");
            assertTrue(ch.offer(0, floats(gpu, allocations, 0, 3, 2)), "the sequence can still be offered");
        }
    }

    /**
     * Stream 0 of a tensor on gpu1 is gpu1's default stream, also from a thread whose current device is gpu0: the
     * copy waits for the producer's kernel on that stream, and a reader on gpu1 with stream 0 waits for the copy.
     */
    @Test
    void streamZeroIsTheDefaultStreamOfTheChannelsDevice() {
        assertEquals(0, gpu.currentDevice());
        try (SameDeviceChannel ch = new SameDeviceChannel(spec(Transport.GPU_SAME_DEVICE, 2, 64, 1), gpu, 1,
                new long[] {0}, new Waker(), wakers(1))) {
            DeviceTensor src = floats(gpu, allocations, 1, 0, 0, 4);
            MemorySegment srcMemory = gpu.memory(src.pointer(), 16);
            gpu.pause();
            gpu.enqueue(1, 0, () -> srcMemory.setAtIndex(ValueLayout.JAVA_FLOAT, 0, 42));
            assertTrue(ch.offer(0, src));
            DeviceTensor v = (DeviceTensor) ch.poll(0, 0);
            assertEquals(1, v.device());
            assertEquals(0, v.stream());
            gpu.resume();
            assertArrayEquals(new float[] {42, 1, 2, 3}, awaitAndRead(gpu, v));
            ch.release(0, 0);
            assertTrue(ch.offer(1, src));
            assertArrayEquals(new float[] {42, 1, 2, 3}, awaitAndRead(gpu, (DeviceTensor) ch.poll(0, 1)));
        }
    }

    @Test
    void errorRecordsAndNullPassThroughByReference() {
        try (SameDeviceChannel ch = channel(2, 64, 0, 0)) {
            Object error = new Object();
            assertTrue(ch.offer(0, error));
            assertTrue(ch.offer(1, null));
            assertSame(error, ch.poll(0, 0));
            assertSame(error, ch.poll(1, 0));
            assertNull(ch.poll(0, 1));
            ch.release(0, 0);
            ch.release(1, 0);
            DeviceTensor src = floats(gpu, allocations, 0, 3, 2);
            assertTrue(ch.offer(2, src));
            assertArrayEquals(expected(3, 2), awaitAndRead(gpu, (DeviceTensor) ch.poll(1, 2)));
        }
    }

    /**
     * With the simulated GPU paused, work queues up as it would on a busy GPU. The copy must see what the
     * producer's kernel wrote, the reader's kernel must see the copy, the writer's next kernel on its stream
     * must not change what was copied, and the copy of the slot's next sequence must wait for the reader's
     * kernel on the old one.
     */
    @Test
    void copiesAreOrderedAfterTheProducerBeforeItsReuseAndAfterTheReadersRelease() {
        long producer = gpu.createStream(GPU);
        long consumer = gpu.createStream(GPU);
        try (SameDeviceChannel ch = channel(1, 64, consumer)) {
            DeviceTensor src = floats(gpu, allocations, producer, 0, 4);
            MemorySegment srcMemory = gpu.memory(src.pointer(), 16);
            float[] seenByKernel = new float[4];
            gpu.pause();
            gpu.enqueue(GPU, producer, () -> srcMemory.setAtIndex(ValueLayout.JAVA_FLOAT, 0, 42));
            assertTrue(ch.offer(0, src));
            gpu.enqueue(GPU, producer, () -> srcMemory.setAtIndex(ValueLayout.JAVA_FLOAT, 0, -1)); // reuses the source
            DeviceTensor v = (DeviceTensor) ch.poll(0, 0);
            MemorySegment slot = gpu.memory(v.pointer(), 16);
            gpu.enqueue(GPU, consumer, () -> MemorySegment.copy(slot, ValueLayout.JAVA_FLOAT, 0, seenByKernel, 0, 4));
            ch.release(0, 0);
            gpu.enqueue(GPU, producer, () -> srcMemory.setAtIndex(ValueLayout.JAVA_FLOAT, 1, 99));
            assertTrue(ch.offer(1, src), "the host does not wait for the GPU");
            assertArrayEquals(new float[] {0, 0, 0, 0}, slot.toArray(ValueLayout.JAVA_FLOAT), "nothing ran yet");
            gpu.resume();
            gpu.synchronizeStream(GPU, consumer);
            assertArrayEquals(new float[] {42, 1, 2, 3}, seenByKernel);
            assertArrayEquals(new float[] {-1, 99, 2, 3}, awaitAndRead(gpu, (DeviceTensor) ch.poll(0, 1)));
        } finally {
            gpu.destroyStream(producer);
            gpu.destroyStream(consumer);
        }
    }

    @Test
    void closeFreesSlotsEventsAndStream() {
        long before = gpu.allocatedBytes();
        SameDeviceChannel ch = channel(4, 100, 0, 0, 0);
        assertEquals(3 * 4 * 256, gpu.allocatedBytes() - before, "3 readers x 4 slots, 100 B rounded to 256");
        assertEquals(1, gpu.liveStreams());
        assertEquals(1 + 4 + 3 * 4, gpu.liveEvents());
        DeviceTensor src = floats(gpu, allocations, 0, 0, 4);
        assertTrue(ch.offer(0, src));
        ch.close();
        ch.close();
        assertEquals(GpuSlots.ALIGN, gpu.allocatedBytes() - before, "only the writer's own tensor is left (16 B, rounded)");
        assertEquals(0, gpu.liveStreams());
        assertEquals(0, gpu.liveEvents());
    }

    @Test
    void streamsMustMatchReaders() {
        assertEquals("channel c3 has 2 readers, got 1 streams", assertThrows(IllegalArgumentException.class,
                () -> new SameDeviceChannel(spec(Transport.GPU_SAME_DEVICE, 2, 64, 2), gpu, GPU, new long[] {0},
                        new Waker(), wakers(2))).getMessage());
        assertEquals(0, gpu.allocatedBytes());
    }

    /** A writer and two reader threads, 500 sequences through 3 slots; every value checked, every wait bounded. */
    @Test
    void threadsPassEveryValueInOrder() throws Exception {
        int count = 500;
        Waker writerWaker = new Waker();
        Waker[] readerWakers = wakers(2);
        try (SameDeviceChannel ch = new SameDeviceChannel(spec(Transport.GPU_SAME_DEVICE, 3, 64, 2), gpu, GPU,
                new long[] {0, 0}, writerWaker, readerWakers)) {
            DeviceTensor src = floats(gpu, allocations, 0, 0, 8);
            MemorySegment srcMemory = gpu.memory(src.pointer(), 32);
            long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(40);
            AtomicReference<Throwable> failure = new AtomicReference<>();
            List<Thread> readers = new ArrayList<>();
            for (int r = 0; r < 2; r++) {
                int reader = r;
                readers.add(Thread.ofPlatform().start(() -> {
                    try {
                        Set<Long> pointers = new HashSet<>();
                        for (long seq = 0; seq < count; seq++) {
                            Object v;
                            while ((v = ch.poll(reader, seq)) == NOT_READY) {
                                waitUntil(deadline);
                            }
                            DeviceTensor t = (DeviceTensor) v;
                            pointers.add(t.pointer());
                            float[] got = awaitAndRead(gpu, t);
                            assertEquals(seq, (long) got[0], "reader " + reader);
                            assertEquals(seq + 7, (long) got[7], "reader " + reader);
                            ch.release(reader, seq);
                        }
                        assertEquals(3, pointers.size(), "three slots, reused");
                    } catch (Throwable t) {
                        failure.compareAndSet(null, t);
                    }
                }));
            }
            for (long seq = 0; seq < count && failure.get() == null; seq++) {
                gpu.synchronizeStream(GPU, 0); // the last copy from the source has run
                for (int i = 0; i < 8; i++) {
                    srcMemory.setAtIndex(ValueLayout.JAVA_FLOAT, i, seq + i);
                }
                while (!ch.offer(seq, src)) {
                    waitUntil(deadline);
                }
            }
            for (Thread t : readers) {
                t.join(TimeUnit.SECONDS.toMillis(50));
                assertFalse(t.isAlive(), "reader stuck");
            }
            if (failure.get() != null) {
                throw new AssertionError(failure.get());
            }
        }
    }

    static void waitUntil(long deadline) {
        if (System.nanoTime() > deadline) {
            throw new AssertionError("timed out");
        }
        LockSupport.parkNanos(20_000);
    }
}
