package dev.kiln.transport.gpu;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.graph.Transport;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.DeviceTensor;
import dev.kiln.transport.RemoteError;
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

import static dev.kiln.transport.Channel.NOT_READY;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.GPU;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.expected;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.floats;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.read;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.spec;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The writer's process and the readers' are two simulated processes sharing one simulated machine. */
@Timeout(60)
class CudaIpcChannelTest {

    private final SimulatedDeviceOps writerProcess = new SimulatedDeviceOps();
    private final SimulatedDeviceOps readerProcess = writerProcess.anotherProcess();
    private final List<Long> allocations = new ArrayList<>();
    private final ValueCodec codec = new ValueCodec();
    @TempDir
    Path dir;

    @AfterEach
    void freeSources() {
        allocations.forEach(writerProcess::free);
    }

    private CudaIpcChannel writer(ChannelSpec spec) throws IOException {
        return CudaIpcChannel.createWriter(spec, dir, "ipc", codec, writerProcess, GPU, null,
                new Waker[spec.readers().size()]);
    }

    @Test
    void readersInAnotherProcessGetTheExactBytesInTheirOwnSlots() throws IOException {
        ChannelSpec spec = spec(Transport.CUDA_IPC, 2, 64, 2);
        long stream = readerProcess.createStream(1);
        try (CudaIpcChannel w = writer(spec);
             CudaIpcChannel r0 = CudaIpcChannel.openReader(spec, w.path(), codec, readerProcess, 0, 1, stream, null);
             CudaIpcChannel r1 = CudaIpcChannel.openReader(spec, w.path(), codec, readerProcess, 1, 2, 0, null)) {
            DeviceTensor src = floats(writerProcess, allocations, 0, 0, 6);
            MemorySegment srcMemory = writerProcess.memory(src.pointer(), 24);
            List<Long> slots0 = new ArrayList<>();
            for (long seq = 0; seq < 6; seq++) {
                srcMemory.setAtIndex(ValueLayout.JAVA_FLOAT, 0, -seq);
                assertTrue(w.offer(seq, new DeviceTensor(GPU, src.pointer(), DType.F32, 0, 3, 2)));
                DeviceTensor a = (DeviceTensor) r0.poll(0, seq);
                DeviceTensor b = (DeviceTensor) r1.poll(1, seq);
                assertEquals(1, a.device());
                assertEquals(2, b.device());
                assertEquals(stream, a.stream());
                assertArrayEquals(new long[] {3, 2}, a.shape());
                float[] want = {-seq, 1, 2, 3, 4, 5};
                assertArrayEquals(want, read(readerProcess, a));
                assertArrayEquals(want, read(readerProcess, b));
                slots0.add(a.pointer());
                r0.release(0, seq);
                r1.release(1, seq);
            }
            assertNotEquals(slots0.get(0), slots0.get(1));
            assertEquals(slots0.get(0), slots0.get(2), "two slots, reused");
            assertEquals(2, writerProcess.openMappings(), "the writer mapped each reader's slots once");
        } finally {
            readerProcess.destroyStream(stream);
        }
    }

    @Test
    void offerReturnsFalseUntilEveryReaderHasAttachedAndReleased() throws IOException {
        ChannelSpec spec = spec(Transport.CUDA_IPC, 1, 64, 1);
        try (CudaIpcChannel w = writer(spec)) {
            DeviceTensor src = floats(writerProcess, allocations, 0, 4, 4);
            assertFalse(w.offer(0, src), "no reader slots yet");
            assertFalse(w.awaitReleased(0, 1_000_000));
            try (CudaIpcChannel r = CudaIpcChannel.openReader(spec, w.path(), codec, readerProcess, 0, 1, 0, null)) {
                assertTrue(w.awaitReleased(0, 1_000_000_000L));
                assertTrue(w.offer(0, src));
                assertFalse(w.offer(1, src));
                assertArrayEquals(expected(4, 4), read(readerProcess, (DeviceTensor) r.poll(0, 0)));
                assertFalse(w.offer(1, src), "polled, not released");
                r.release(0, 0);
                assertTrue(w.offer(1, src));
            }
        }
    }

    @Test
    void tooLargeTensorsAreRefusedAndErrorRecordsPassThrough() throws IOException {
        ChannelSpec spec = spec(Transport.CUDA_IPC, 2, 16, 1);
        try (CudaIpcChannel w = writer(spec);
             CudaIpcChannel r = CudaIpcChannel.openReader(spec, w.path(), codec, readerProcess, 0, 1, 0, null)) {
            DeviceTensor big = floats(writerProcess, allocations, 0, 0, 5);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> w.offer(0, big));
            assertTrue(e.getMessage().startsWith("channel c3 (CUDA_IPC): a F32[5] device tensor of 20 bytes does not"
                    + " fit its device slots of 16 bytes; raise CompileOptions.bufferBytes to at least 20"), e.getMessage());
            assertSame(NOT_READY, r.poll(0, 0));
            RemoteError error = new RemoteError("a", "f", 0, "java.lang.RuntimeException", null, "x".repeat(5000));
            assertTrue(w.offer(0, error));
            assertEquals(error, r.poll(0, 0));
            assertTrue(w.offer(1, null));
            assertEquals(null, r.poll(0, 1));
        }
    }

    /** The writer's copy into a slot waits for the reader's kernel on the slot's previous sequence. */
    @Test
    void theNextCopyIntoASlotWaitsForTheReadersRelease() throws IOException {
        ChannelSpec spec = spec(Transport.CUDA_IPC, 1, 64, 1);
        long consumer = readerProcess.createStream(1);
        try (CudaIpcChannel w = writer(spec);
             CudaIpcChannel r = CudaIpcChannel.openReader(spec, w.path(), codec, readerProcess, 0, 1, consumer, null)) {
            DeviceTensor first = floats(writerProcess, allocations, 0, 10, 4);
            DeviceTensor second = floats(writerProcess, allocations, 0, 20, 4);
            float[] seenByKernel = new float[4];
            writerProcess.pause();
            assertTrue(w.offer(0, first));
            DeviceTensor v = (DeviceTensor) r.poll(0, 0);
            MemorySegment slot = readerProcess.memory(v.pointer(), 16);
            readerProcess.enqueue(consumer, () -> MemorySegment.copy(slot, ValueLayout.JAVA_FLOAT, 0, seenByKernel, 0, 4));
            r.release(0, 0);
            assertTrue(w.offer(1, second));
            writerProcess.resume();
            assertArrayEquals(expected(10, 4), seenByKernel);
            assertArrayEquals(expected(20, 4), read(readerProcess, (DeviceTensor) r.poll(0, 1)));
        } finally {
            readerProcess.destroyStream(consumer);
        }
    }

    @Test
    void aReaderInTheWritersProcessIsUsedWithoutOpeningHandles() throws IOException {
        ChannelSpec spec = spec(Transport.CUDA_IPC, 2, 64, 1);
        try (CudaIpcChannel w = writer(spec);
             CudaIpcChannel r = CudaIpcChannel.openReader(spec, w.path(), codec, writerProcess, 0, 0, 0, null)) {
            DeviceTensor src = floats(writerProcess, allocations, 0, 1, 4);
            assertTrue(w.offer(0, src));
            assertArrayEquals(expected(1, 4), read(writerProcess, (DeviceTensor) r.poll(0, 0)));
            assertEquals(0, writerProcess.openMappings());
        }
    }

    @Test
    void closeUnmapsFreesAndDeletesEveryFile() throws IOException {
        ChannelSpec spec = spec(Transport.CUDA_IPC, 3, 64, 1);
        CudaIpcChannel w = writer(spec);
        CudaIpcChannel r = CudaIpcChannel.openReader(spec, w.path(), codec, readerProcess, 0, 1, 0, null);
        DeviceTensor src = floats(writerProcess, allocations, 0, 0, 4);
        assertTrue(w.offer(0, src));
        assertEquals(1, writerProcess.openMappings());
        try (var files = Files.list(dir)) {
            assertEquals(2, files.count(), "the channel's file and the reader's handles");
        }
        w.close();
        r.close();
        r.close();
        assertEquals(0, writerProcess.openMappings());
        assertEquals(0, writerProcess.liveEvents());
        assertEquals(0, writerProcess.liveStreams());
        assertEquals(16, writerProcess.allocatedBytes(), "only the writer's own tensor is left");
        try (var files = Files.list(dir)) {
            assertEquals(0, files.count());
        }
    }
}
