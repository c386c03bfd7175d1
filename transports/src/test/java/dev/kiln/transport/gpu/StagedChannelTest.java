package dev.kiln.transport.gpu;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.graph.Transport;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.DeviceTensor;
import dev.kiln.tensor.Tensor;
import dev.kiln.transport.RemoteError;
import dev.kiln.transport.ShmChannel;
import dev.kiln.transport.ValueCodec;
import dev.kiln.transport.Waker;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;

import static dev.kiln.transport.Channel.NOT_READY;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.GPU;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.MEMORY;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.awaitAndRead;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.expected;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.floats;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.read;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.spec;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

@Timeout(60)
class StagedChannelTest {

    private final SimulatedDeviceOps gpu = SimulatedDeviceOps.create(SimulatedGpus.of(2, MEMORY));
    private final List<Long> allocations = new ArrayList<>();
    private final ValueCodec codec = new ValueCodec();
    @TempDir
    Path dir;

    @AfterEach
    void freeSources() {
        allocations.forEach(gpu::free);
        gpu.close();
    }

    private StagedChannel writer(ChannelSpec spec) throws IOException {
        return StagedChannel.createWriter(spec, dir, "staged", codec, gpu, GPU, null, new Waker[spec.readers().size()]);
    }

    @Test
    void aGpuReaderGetsADeviceTensorAndAHostReaderAHostTensorWithTheExactBytes() throws IOException {
        ChannelSpec spec = spec(Transport.STAGED, 2, 64, 2);
        long consumer = gpu.createStream(GPU);
        try (StagedChannel w = writer(spec);
             StagedChannel onGpu = StagedChannel.openReader(spec, w.path(), codec, gpu, 0, GPU, consumer, null);
             StagedChannel onHost = StagedChannel.openReader(spec, w.path(), codec, gpu, 1, -1, 0, null)) {
            DeviceTensor src = floats(gpu, allocations, 0, 0, 6);
            MemorySegment srcMemory = gpu.memory(src.pointer(), 24);
            long buffer = 0;
            for (long seq = 0; seq < 7; seq++) {
                srcMemory.setAtIndex(ValueLayout.JAVA_FLOAT, 5, seq);
                DeviceTensor shaped = new DeviceTensor(GPU, src.pointer(), DType.F32, 0, 2, 3);
                assertTrue(w.offer(seq, shaped));
                DeviceTensor d = (DeviceTensor) onGpu.poll(0, seq);
                assertEquals(consumer, d.stream());
                assertArrayEquals(new long[] {2, 3}, d.shape());
                assertArrayEquals(new float[] {0, 1, 2, 3, 4, seq}, awaitAndRead(gpu, d));
                buffer = seq == 0 ? d.pointer() : buffer;
                assertEquals(buffer, d.pointer(), "one device buffer per reader");
                Tensor h = (Tensor) onHost.poll(1, seq);
                assertEquals(DType.F32, h.dtype());
                assertArrayEquals(new long[] {2, 3}, h.shape());
                assertArrayEquals(new float[] {0, 1, 2, 3, 4, seq}, h.toFloatArray());
                onGpu.release(0, seq);
                onHost.release(1, seq);
            }
            assertEquals(0, gpu.unpinnedCopies(), "both copies go through pinned host slots");
            assertEquals(2, gpu.pinnedSegments(), "the writer's mapping and the GPU reader's");
        } finally {
            gpu.destroyStream(consumer);
        }
    }

    @Test
    void offerReturnsFalseWhileTheHostSlotsAreFull() throws IOException {
        ChannelSpec spec = spec(Transport.STAGED, 2, 64, 1);
        try (StagedChannel w = writer(spec);
             StagedChannel r = StagedChannel.openReader(spec, w.path(), codec, gpu, 0, GPU, 0, null)) {
            DeviceTensor src = floats(gpu, allocations, 0, 10, 4);
            assertTrue(w.offer(0, src));
            assertTrue(w.offer(1, src));
            assertFalse(w.offer(2, src));
            assertArrayEquals(expected(10, 4), awaitAndRead(gpu, (DeviceTensor) r.poll(0, 0)));
            assertFalse(w.offer(2, src), "polled but not released");
            r.release(0, 0);
            assertTrue(w.offer(2, src));
            assertFalse(w.awaitReleased(3, 0), "sequence 3 needs sequence 1 released");
        }
    }

    /**
     * The writer's process may put any host tensor that fits a host slot there (here a plain shared-memory writer of
     * the staged layout, as a hostile process would): a GPU reader copies none larger than its device buffer.
     */
    @Test
    void aGpuReaderRefusesAHostTensorLargerThanItsDeviceBuffer() throws IOException {
        ChannelSpec spec = spec(Transport.STAGED, 2, 16, 2);
        try (ShmChannel w = ShmChannel.create(StagedChannel.hostSpec(spec), dir, "staged", codec, false, null,
                new Waker[2]);
             StagedChannel onGpu = StagedChannel.openReader(spec, w.path(), codec, gpu, 0, GPU, 0, null);
             StagedChannel onHost = StagedChannel.openReader(spec, w.path(), codec, gpu, 1, -1, 0, null);
             Tensor big = Tensor.of(new float[] {1, 2, 3, 4, 5, 6, 7, 8})) {
            assertTrue(w.offer(0, big), "32 bytes fit the host slot, whose room is for headers of any rank");
            IllegalStateException e = assertThrows(IllegalStateException.class, () -> onGpu.poll(0, 0));
            assertEquals("channel c3 (STAGED): the host slot of sequence 0 holds a F32 tensor of 32 bytes, more than"
                    + " the 16 bytes of reader 0's device buffer; offer device tensors of at most"
                    + " CompileOptions.bufferBytes", e.getMessage());
            assertArrayEquals(new float[] {1, 2, 3, 4, 5, 6, 7, 8}, ((Tensor) onHost.poll(1, 0)).toFloatArray(),
                    "a reader without a GPU reads the host tensor as it is");
        }
    }

    @Test
    void aTensorLargerThanTheSlotIsRefusedAndAnErrorRecordPassesThrough() throws IOException {
        ChannelSpec spec = spec(Transport.STAGED, 2, 16, 1);
        try (StagedChannel w = writer(spec);
             StagedChannel r = StagedChannel.openReader(spec, w.path(), codec, gpu, 0, GPU, 0, null)) {
            DeviceTensor big = floats(gpu, allocations, 0, 0, 5);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> w.offer(0, big));
            assertTrue(e.getMessage().startsWith("channel c3 (STAGED): a F32[5] device tensor of 20 bytes does not fit"
                    + " its device slots of 16 bytes; raise CompileOptions.bufferBytes to at least 20"), e.getMessage());
            assertSame(NOT_READY, r.poll(0, 0));
            RemoteError error = new RemoteError("a", "f", 0, "java.lang.IllegalStateException", "boom", "trace");
            assertTrue(w.offer(0, error));
            assertEquals(error, r.poll(0, 0));
            r.release(0, 0);
            DeviceTensor exact = floats(gpu, allocations, 0, 5, 4);
            assertTrue(w.offer(1, exact), "exactly slotBytes fits");
            assertArrayEquals(expected(5, 4), awaitAndRead(gpu, (DeviceTensor) r.poll(0, 1)));
        }
    }

    /** The writer's offer returns only after its device-to-host copy ran, and that copy after the producer's kernel. */
    @Test
    void offerWaitsForItsCopyWhichWaitsForTheProducer() throws Exception {
        ChannelSpec spec = spec(Transport.STAGED, 2, 64, 1);
        long producer = gpu.createStream(GPU);
        try (StagedChannel w = writer(spec);
             StagedChannel r = StagedChannel.openReader(spec, w.path(), codec, gpu, 0, -1, 0, null)) {
            DeviceTensor src = floats(gpu, allocations, producer, 0, 4);
            MemorySegment srcMemory = gpu.memory(src.pointer(), 16);
            gpu.pause();
            gpu.enqueue(GPU, producer, () -> srcMemory.setAtIndex(ValueLayout.JAVA_FLOAT, 0, 42));
            AtomicReference<Object> offered = new AtomicReference<>();
            Thread t = Thread.ofPlatform().start(() -> offered.set(w.offer(0, src)));
            t.join(300);
            assertTrue(t.isAlive(), "offer waits while the GPU has not copied");
            assertSame(NOT_READY, r.poll(0, 0));
            gpu.resume();
            t.join(TimeUnit.SECONDS.toMillis(30));
            assertFalse(t.isAlive());
            assertEquals(true, offered.get());
            assertArrayEquals(new float[] {42, 1, 2, 3}, ((Tensor) r.poll(0, 0)).toFloatArray());
        } finally {
            gpu.destroyStream(producer);
        }
    }

    /** A GPU reader's release waits for its host-to-device copy, so the writer never overwrites a slot being read. */
    @Test
    void releaseWaitsForTheReadersCopy() throws Exception {
        ChannelSpec spec = spec(Transport.STAGED, 1, 64, 1);
        try (StagedChannel w = writer(spec);
             StagedChannel r = StagedChannel.openReader(spec, w.path(), codec, gpu, 0, GPU, 0, null)) {
            DeviceTensor src = floats(gpu, allocations, 0, 3, 4);
            assertTrue(w.offer(0, src));
            gpu.pause();
            DeviceTensor view = (DeviceTensor) r.poll(0, 0);
            Thread t = Thread.ofPlatform().start(() -> r.release(0, 0));
            t.join(300);
            assertTrue(t.isAlive(), "release waits for the copy");
            assertArrayEquals(new float[4], read(gpu, view), "not copied yet");
            gpu.resume();
            t.join(TimeUnit.SECONDS.toMillis(30));
            assertFalse(t.isAlive());
            assertArrayEquals(expected(3, 4), read(gpu, view));
            assertTrue(w.offer(1, src));
        }
    }

    @Test
    void endsRefuseTheOtherSidesCalls() throws IOException {
        ChannelSpec spec = spec(Transport.STAGED, 2, 64, 2);
        try (StagedChannel w = writer(spec);
             StagedChannel r = StagedChannel.openReader(spec, w.path(), codec, gpu, 1, -1, 0, null)) {
            assertEquals("channel c3: this end belongs to reader 1, not reader 0",
                    assertThrows(IllegalArgumentException.class, () -> r.poll(0, 0)).getMessage());
            assertTrue(assertThrows(IllegalStateException.class, () -> r.offer(0, null)).getMessage()
                    .contains("only the writer end offers"));
            assertThrows(IllegalArgumentException.class, () -> w.poll(0, 0));
            assertThrows(IllegalArgumentException.class,
                    () -> StagedChannel.createWriter(spec, dir, "x", codec, gpu, -1, null, new Waker[2]));
        }
    }

    @Test
    void aTensorOnAnotherDeviceThanTheWritersIsRefusedAndNothingIsPublished() throws IOException {
        ChannelSpec spec = spec(Transport.STAGED, 2, 64, 1);
        try (StagedChannel w = writer(spec);
             StagedChannel r = StagedChannel.openReader(spec, w.path(), codec, gpu, 0, -1, 0, null)) {
            DeviceTensor elsewhere = floats(gpu, allocations, 1, 0, 0, 4);
            assertEquals("channel c3 (STAGED) sends from gpu0, the writer's device, but the tensor is on gpu1: return"
                    + " tensors on the actor's own device (GpuContext.device())",
                    assertThrows(IllegalArgumentException.class, () -> w.offer(0, elsewhere)).getMessage());
            assertSame(NOT_READY, r.poll(0, 0));
            assertTrue(w.offer(0, floats(gpu, allocations, 0, 6, 4)), "the sequence can still be offered");
            assertArrayEquals(expected(6, 4), ((Tensor) r.poll(0, 0)).toFloatArray());
        }
    }

    /**
     * A writer on gpu1 offering a tensor on stream 0 (gpu1's default stream, from a thread whose current device is
     * gpu0) copies after the producer's kernel there, and a GPU reader on gpu1 with stream 0 gets it on that stream.
     */
    @Test
    void streamZeroIsTheDefaultStreamOfTheEndsDevice() throws Exception {
        assertEquals(0, gpu.currentDevice());
        ChannelSpec spec = spec(Transport.STAGED, 2, 64, 1);
        try (StagedChannel w = StagedChannel.createWriter(spec, dir, "staged", codec, gpu, 1, null, new Waker[1]);
             StagedChannel r = StagedChannel.openReader(spec, w.path(), codec, gpu, 0, 1, 0, null)) {
            DeviceTensor src = floats(gpu, allocations, 1, 0, 0, 4);
            MemorySegment srcMemory = gpu.memory(src.pointer(), 16);
            gpu.pause();
            gpu.enqueue(1, 0, () -> srcMemory.setAtIndex(ValueLayout.JAVA_FLOAT, 0, 42));
            AtomicReference<Object> offered = new AtomicReference<>();
            Thread t = Thread.ofPlatform().start(() -> offered.set(w.offer(0, src)));
            t.join(300);
            assertTrue(t.isAlive(), "offer waits for its copy, behind the kernel on gpu1's default stream");
            gpu.resume();
            t.join(TimeUnit.SECONDS.toMillis(30));
            assertEquals(true, offered.get());
            DeviceTensor d = (DeviceTensor) r.poll(0, 0);
            assertEquals(1, d.device());
            assertEquals(0, d.stream());
            assertArrayEquals(new float[] {42, 1, 2, 3}, awaitAndRead(gpu, d));
            r.release(0, 0);
        }
    }

    @Test
    void closeFreesAndUnpinsEverythingAndRemovesTheFile() throws IOException {
        ChannelSpec spec = spec(Transport.STAGED, 3, 64, 1);
        StagedChannel w = writer(spec);
        StagedChannel r = StagedChannel.openReader(spec, w.path(), codec, gpu, 0, GPU, 0, null);
        DeviceTensor src = floats(gpu, allocations, 0, 0, 4);
        assertTrue(w.offer(0, src));
        assertInstanceOf(DeviceTensor.class, r.poll(0, 0));
        r.close();
        w.close();
        w.close();
        assertFalse(Files.exists(w.path()));
        assertEquals(GpuSlots.ALIGN, gpu.allocatedBytes(), "only the writer's own tensor is left (16 B, rounded)");
        assertEquals(0, gpu.pinnedSegments());
        assertEquals(0, gpu.liveEvents());
        assertEquals(0, gpu.liveStreams());
    }
}
