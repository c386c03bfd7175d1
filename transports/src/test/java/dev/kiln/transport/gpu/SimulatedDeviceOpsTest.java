package dev.kiln.transport.gpu;

import dev.kiln.cuda.CudaException;
import dev.kiln.cuda.MemcpyKind;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.DeviceTensor;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.nio.file.attribute.PosixFilePermissions;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/**
 * The simulator's CUDA rules, each broken once on purpose (the error names are CUDA's), and what it must get right:
 * stream order, waits across devices and processes, shared memory between simulated processes, the machine-wide
 * memory bound, and the machine's files.
 */
@Timeout(60)
class SimulatedDeviceOpsTest {

    private static final long MIB = 1 << 20;
    private static final long MEMORY = 64 * MIB;
    private static final long SHORT_MILLIS = 300;

    /** Everything a test opened, closed after it in reverse order. */
    private final List<SimulatedDeviceOps> opened = new ArrayList<>();

    @AfterEach
    void closeAll() {
        for (int i = opened.size() - 1; i >= 0; i--) {
            opened.get(i).close();
        }
    }

    private SimulatedDeviceOps machine(SimulatedGpus gpus) {
        return keep(SimulatedDeviceOps.create(gpus));
    }

    private SimulatedDeviceOps keep(SimulatedDeviceOps ops) {
        opened.add(ops);
        return ops;
    }

    private static String cudaError(Executable call) {
        return assertThrows(CudaException.class, call).errorName();
    }

    private static void fill(MemorySegment m, int value) {
        for (long i = 0; i < m.byteSize() / 4; i++) {
            m.setAtIndex(ValueLayout.JAVA_INT, i, value);
        }
    }

    // ------------------------------------------------------------------ devices

    @Test
    void eachThreadHasACurrentDeviceAndANewThreadStartsOnZero() throws InterruptedException {
        SimulatedDeviceOps gpu = machine(SimulatedGpus.of(2, MEMORY));
        assertEquals(0, gpu.currentDevice());
        gpu.setCurrentDevice(1);
        assertEquals(1, gpu.currentDevice());
        AtomicInteger seenByNewThread = new AtomicInteger(-1);
        Thread t = Thread.ofPlatform().start(() -> seenByNewThread.set(gpu.currentDevice()));
        t.join();
        assertEquals(0, seenByNewThread.get());
        long p = gpu.allocate(0, 256);
        gpu.recordEvent(0, gpu.createEvent(0, false), 0);
        assertEquals(1, gpu.currentDevice(), "calls name their device and leave the current one as it was");
        assertEquals("cudaErrorInvalidDevice", cudaError(() -> gpu.setCurrentDevice(2)));
        assertEquals("cudaErrorInvalidDevice", cudaError(() -> gpu.allocate(-1, 256)));
        gpu.free(p);
    }

    @Test
    void devicesHaveUuidsMemoryAndPeers() {
        SimulatedDeviceOps gpu = machine(SimulatedGpus.of(2, MEMORY));
        SimulatedDeviceOps other = keep(gpu.anotherProcess());
        String pattern = "GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}";
        assertTrue(gpu.deviceUuid(0).matches(pattern), gpu.deviceUuid(0));
        assertTrue(gpu.deviceUuid(1).matches(pattern), gpu.deviceUuid(1));
        assertNotEquals(gpu.deviceUuid(0), gpu.deviceUuid(1));
        assertEquals(gpu.deviceUuid(1), other.deviceUuid(1), "processes of a machine agree on its devices");
        assertNotEquals(gpu.deviceUuid(0), machine(SimulatedGpus.of(1, MIB)).deviceUuid(0), "another machine");
        assertEquals(2, gpu.deviceCount());
        assertEquals(MEMORY, gpu.totalBytes(1));
        assertFalse(gpu.canAccessPeer(0, 0), "a device is not its own peer");
        assertTrue(gpu.canAccessPeer(0, 1));
        assertFalse(machine(new SimulatedGpus(2, MIB, false)).canAccessPeer(0, 1));
        assertEquals("cudaErrorInvalidDevice", cudaError(() -> gpu.deviceUuid(2)));
    }

    // ------------------------------------------------------------------ streams and events

    @Test
    void streamZeroIsTheDefaultStreamOfTheNamedDevice() {
        SimulatedDeviceOps gpu = machine(SimulatedGpus.of(2, MEMORY));
        long onOne = gpu.createEvent(1, false);
        gpu.recordEvent(1, onOne, 0);
        gpu.synchronizeEvent(onOne);
        assertEquals(0, gpu.currentDevice(), "stream 0 of gpu1, whatever the thread's current device");
        CudaException e = assertThrows(CudaException.class, () -> gpu.recordEvent(0, onOne, 0));
        assertEquals("cudaErrorInvalidResourceHandle", e.errorName());
        assertTrue(e.getMessage().contains("an event of gpu1 recorded on a stream of gpu0"), e.getMessage());
        long streamOfZero = gpu.createStream(0);
        assertEquals("cudaErrorInvalidResourceHandle", cudaError(() -> gpu.recordEvent(0, onOne, streamOfZero)));
        long streamOfOne = gpu.createStream(1);
        assertEquals("stream 0x" + Long.toHexString(streamOfOne) + " belongs to gpu1, the call names gpu0",
                assertThrows(IllegalArgumentException.class, () -> gpu.recordEvent(0, onOne, streamOfOne)).getMessage());
        gpu.recordEvent(1, onOne, streamOfOne);
        gpu.waitEvent(0, streamOfZero, onOne); // waits may cross devices
        gpu.synchronizeStream(0, streamOfZero);
        assertEquals("cudaErrorInvalidResourceHandle", cudaError(() -> gpu.destroyStream(0)));
        gpu.destroyStream(streamOfZero);
        gpu.destroyStream(streamOfOne);
        assertEquals("cudaErrorInvalidResourceHandle", cudaError(() -> gpu.destroyStream(streamOfOne)));
        assertEquals("cudaErrorInvalidResourceHandle", cudaError(() -> gpu.synchronizeStream(1, streamOfOne)));
        gpu.destroyEvent(onOne);
        assertEquals("cudaErrorInvalidResourceHandle", cudaError(() -> gpu.destroyEvent(onOne)));
        assertEquals(0, gpu.liveStreams(), "the default streams are not created, so not counted");
        assertEquals(0, gpu.liveEvents());
    }

    @Test
    void aStreamRunsItsWorkInOrderAndPauseHoldsIt() {
        SimulatedDeviceOps gpu = machine(SimulatedGpus.of(1, MEMORY));
        long stream = gpu.createStream(0);
        long source = gpu.allocate(0, 16);
        long copy = gpu.allocate(0, 16);
        MemorySegment s = gpu.memory(source, 16);
        List<String> ran = new ArrayList<>();
        gpu.pause();
        gpu.enqueue(0, stream, () -> {
            ran.add("first");
            fill(s, 1);
        });
        gpu.copyAsync(0, copy, source, 16, MemcpyKind.DEVICE_TO_DEVICE, stream);
        gpu.enqueue(0, stream, () -> {
            ran.add("second");
            fill(s, 2);
        });
        assertFalse(gpu.queryStream(0, stream));
        assertEquals(List.of(), ran, "paused: nothing ran");
        assertArrayEquals(new int[4], gpu.memory(copy, 16).toArray(ValueLayout.JAVA_INT));
        gpu.resume();
        assertTrue(gpu.queryStream(0, stream));
        assertEquals(List.of("first", "second"), ran);
        assertArrayEquals(new int[] {1, 1, 1, 1}, gpu.memory(copy, 16).toArray(ValueLayout.JAVA_INT),
                "the copy ran between the two");
        assertArrayEquals(new int[] {2, 2, 2, 2}, s.toArray(ValueLayout.JAVA_INT));
        gpu.enqueue(0, stream, () -> ran.add("at once"));
        assertEquals("at once", ran.getLast(), "not paused: work runs as soon as it can");
        gpu.destroyStream(stream);
    }

    /** Work that completes when the test says so, holding its stream until then. */
    private static final class Gate implements StreamTask {
        private volatile boolean open;

        @Override
        public void start() {
        }

        @Override
        public boolean done() {
            return open;
        }

        void open(SimulatedDeviceOps gpu) {
            open = true;
            gpu.wake();
        }
    }

    @Test
    void aStreamWaitsForAnEventOfAnotherDevice() {
        SimulatedDeviceOps gpu = machine(SimulatedGpus.of(2, MEMORY));
        long onOne = gpu.createStream(1);
        long onZero = gpu.createStream(0);
        long event = gpu.createEvent(1, false);
        Gate gate = new Gate();
        List<String> ran = new ArrayList<>();
        gpu.enqueueTask(1, onOne, gate);
        gpu.enqueue(1, onOne, () -> ran.add("gpu1"));
        gpu.recordEvent(1, event, onOne);
        gpu.waitEvent(0, onZero, event);
        gpu.enqueue(0, onZero, () -> ran.add("gpu0"));
        assertFalse(gpu.queryStream(0, onZero), "gpu0's stream waits for gpu1's event");
        assertEquals(List.of(), ran);
        gate.open(gpu);
        gpu.synchronizeStream(0, onZero);
        assertEquals(List.of("gpu1", "gpu0"), ran);
        gpu.destroyStream(onOne);
        gpu.destroyStream(onZero);
    }

    @Test
    void synchronizingBehindAPausedStreamIsInterruptible() throws InterruptedException {
        SimulatedDeviceOps gpu = machine(SimulatedGpus.of(1, MEMORY));
        long stream = gpu.createStream(0);
        gpu.pause();
        gpu.enqueue(0, stream, () -> { });
        AtomicReference<Throwable> thrown = new AtomicReference<>();
        Thread waiter = Thread.ofPlatform().start(() -> {
            try {
                gpu.synchronizeStream(0, stream);
            } catch (Throwable t) {
                thrown.set(t);
            }
        });
        waiter.join(SHORT_MILLIS);
        assertTrue(waiter.isAlive(), "the stream is held");
        waiter.interrupt();
        waiter.join(20_000);
        assertFalse(waiter.isAlive());
        assertEquals("cudaStreamSynchronize was interrupted while the simulated GPU had work pending (this simulated"
                + " process is paused)", thrown.get().getMessage());
        gpu.resume();
        assertTrue(gpu.queryStream(0, stream));
    }

    // ------------------------------------------------------------------ memory

    @Test
    void deviceMemoryIsBoundedAndFreeBytesFallsAndRises() {
        SimulatedDeviceOps gpu = machine(SimulatedGpus.of(2, MIB));
        assertEquals(MIB, gpu.freeBytes(0));
        long p = gpu.allocate(0, 100);
        assertEquals(MIB - 256, gpu.freeBytes(0), "allocations are rounded up to 256 bytes");
        assertEquals(256, gpu.allocatedBytes());
        assertEquals(MIB, gpu.freeBytes(1), "each device has its own memory");
        CudaException e = assertThrows(CudaException.class, () -> gpu.allocate(0, MIB));
        assertEquals("cudaErrorMemoryAllocation", e.errorName());
        assertEquals(2, e.code());
        assertEquals("cudaErrorInvalidValue", cudaError(() -> gpu.allocate(0, 0)));
        long q = gpu.allocate(0, MIB - 256);
        assertEquals(0, gpu.freeBytes(0));
        gpu.free(p);
        gpu.free(q);
        assertEquals(MIB, gpu.freeBytes(0));
        assertEquals("cudaErrorInvalidValue", cudaError(() -> gpu.free(p)));
        assertEquals(0, gpu.allocatedBytes());
    }

    @Test
    void theMemoryBoundIsMachineWide() {
        SimulatedDeviceOps a = machine(SimulatedGpus.of(2, MIB));
        SimulatedDeviceOps b = keep(a.anotherProcess());
        long p = a.allocate(0, 768 * 1024);
        assertEquals(256 * 1024, b.freeBytes(0), "another process sees the allocation");
        assertEquals("cudaErrorMemoryAllocation", cudaError(() -> b.allocate(0, 512 * 1024)));
        long q = b.allocate(1, 512 * 1024);
        a.free(p);
        long r = b.allocate(0, 512 * 1024);
        assertEquals(512 * 1024, a.freeBytes(0));
        b.free(q);
        b.free(r);
        assertEquals(MIB, a.freeBytes(0));
    }

    @Test
    void copiesCheckTheirMemory() {
        SimulatedDeviceOps gpu = machine(SimulatedGpus.of(1, MEMORY));
        long p = gpu.allocate(0, 256);
        assertEquals("cudaErrorInvalidValue", cudaError(
                () -> gpu.copyAsync(0, p + 128, p, 256, MemcpyKind.DEVICE_TO_DEVICE, 0)));
        assertEquals("cudaErrorInvalidValue", cudaError(
                () -> gpu.copyAsync(0, p, p, -1, MemcpyKind.DEVICE_TO_DEVICE, 0)));
        assertEquals("cudaErrorInvalidValue", cudaError(() -> gpu.memory(p + 256, 1)));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(256);
            fill(gpu.memory(p, 256), 5);
            gpu.copyAsync(0, host.address(), p, 256, MemcpyKind.DEVICE_TO_HOST, 0);
            gpu.synchronizeStream(0, 0);
            assertEquals(5, host.getAtIndex(ValueLayout.JAVA_INT, 63));
            assertEquals(1, gpu.unpinnedCopies(), "host memory that is not pinned is copied slowly on a GPU");
            gpu.pinHost(host);
            gpu.copyAsync(0, p, host.address(), 256, MemcpyKind.HOST_TO_DEVICE, 0);
            gpu.synchronizeStream(0, 0);
            assertEquals(1, gpu.unpinnedCopies());
            gpu.unpinHost(host);
        }
    }

    @Test
    void hostMemoryIsPinnedOnce() {
        SimulatedDeviceOps gpu = machine(SimulatedGpus.of(1, MEMORY));
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(4096);
            gpu.pinHost(host);
            assertEquals(1, gpu.pinnedSegments());
            assertEquals("cudaErrorHostMemoryAlreadyRegistered", cudaError(() -> gpu.pinHost(host)));
            assertEquals("cudaErrorHostMemoryAlreadyRegistered", cudaError(() -> gpu.pinHost(host.asSlice(100, 10))),
                    "an overlapping range too");
            gpu.unpinHost(host);
            assertEquals(0, gpu.pinnedSegments());
            assertEquals("cudaErrorHostMemoryNotRegistered", cudaError(() -> gpu.unpinHost(host)));
        }
    }

    // ------------------------------------------------------------------ peer access

    @Test
    void withoutPeerAccessNothingReachesAnotherDevicesMemory() {
        SimulatedDeviceOps gpu = machine(new SimulatedGpus(2, MEMORY, false));
        SimulatedDeviceOps other = keep(gpu.anotherProcess());
        long zero = gpu.allocate(0, 256);
        long one = gpu.allocate(1, 256);
        CudaException copy = assertThrows(CudaException.class,
                () -> gpu.copyAsync(0, zero, one, 256, MemcpyKind.DEVICE_TO_DEVICE, 0));
        assertEquals("cudaErrorPeerAccessUnsupported", copy.errorName());
        assertTrue(copy.getMessage().contains("memory of gpu1 used on a stream of gpu0"), copy.getMessage());
        DeviceTensor misplaced = new DeviceTensor(0, one, DType.F32, 0, 64); // claims gpu0, lives on gpu1
        assertEquals("cudaErrorPeerAccessUnsupported", cudaError(
                () -> gpu.launch(0, 0, SCALE, GpuKernel.Shape.linear(64, 64), misplaced, 2f, 64)));
        byte[] handle = gpu.exportMemory(one);
        assertEquals("cudaErrorPeerAccessUnsupported", cudaError(() -> other.openMemory(0, handle)));
        long mapped = other.openMemory(1, handle);
        other.closeMemory(mapped);
        gpu.copyAsync(1, one, one, 128, MemcpyKind.DEVICE_TO_DEVICE, 0); // its own device is fine
        gpu.synchronizeStream(1, 0);
    }

    @Test
    void withPeerAccessACopyCrossesDevices() {
        SimulatedDeviceOps gpu = machine(SimulatedGpus.of(2, MEMORY));
        long zero = gpu.allocate(0, 256);
        long one = gpu.allocate(1, 256);
        fill(gpu.memory(one, 256), 9);
        gpu.copyAsync(0, zero, one, 256, MemcpyKind.DEVICE_TO_DEVICE, 0);
        gpu.synchronizeStream(0, 0);
        assertEquals(9, gpu.memory(zero, 256).getAtIndex(ValueLayout.JAVA_INT, 10));
    }

    // ------------------------------------------------------------------ IPC

    @Test
    void memoryAndEventsAreSharedWithAnotherProcess() {
        SimulatedDeviceOps a = machine(SimulatedGpus.of(2, MEMORY));
        SimulatedDeviceOps b = keep(a.anotherProcess());
        assertNotEquals(a.processId(), b.processId());
        long p = a.allocate(0, 1024);
        MemorySegment inA = a.memory(p, 1024);
        inA.setAtIndex(ValueLayout.JAVA_INT, 0, 42);
        long q = b.openMemory(0, a.exportMemory(p));
        MemorySegment inB = b.memory(q, 1024);
        assertEquals(42, inB.getAtIndex(ValueLayout.JAVA_INT, 0), "written by a, read by b");
        inB.setAtIndex(ValueLayout.JAVA_INT, 1, 7);
        assertEquals(7, inA.getAtIndex(ValueLayout.JAVA_INT, 1), "written by b, read by a");
        assertEquals(q, b.openMemory(0, a.exportMemory(p)), "a second open of one handle is counted, not mapped again");
        assertEquals(2, b.openMappings());
        b.closeMemory(q);
        assertEquals(1, b.openMappings());

        long event = a.createEvent(0, true);
        long aStream = a.createStream(0);
        long inBsEyes = b.openEvent(1, a.exportEvent(event));
        long bStream = b.createStream(1);
        int[] seenByB = new int[1];
        a.pause();
        a.enqueue(0, aStream, () -> inA.setAtIndex(ValueLayout.JAVA_INT, 2, 99));
        a.recordEvent(0, event, aStream);
        b.waitEvent(1, bStream, inBsEyes);
        b.enqueue(1, bStream, () -> seenByB[0] = inB.getAtIndex(ValueLayout.JAVA_INT, 2));
        assertFalse(b.queryStream(1, bStream), "b waits for an event a records; a is paused");
        a.resume();
        b.synchronizeStream(1, bStream);
        assertEquals(99, seenByB[0], "the event recorded in a completed b's wait, after a's kernel");

        b.closeMemory(q);
        assertEquals(0, b.openMappings());
        b.destroyEvent(inBsEyes);
        b.destroyStream(bStream);
        a.destroyEvent(event);
        a.destroyStream(aStream);
        a.free(p);
    }

    @Test
    void handlesDoNotOpenInTheProcessThatExportedThem() {
        SimulatedDeviceOps gpu = machine(SimulatedGpus.of(1, MEMORY));
        long p = gpu.allocate(0, 256);
        long event = gpu.createEvent(0, true);
        assertEquals("cudaErrorDeviceUninitialized", cudaError(() -> gpu.openMemory(0, gpu.exportMemory(p))));
        assertEquals("cudaErrorDeviceUninitialized", cudaError(() -> gpu.openEvent(0, gpu.exportEvent(event))));
        long local = gpu.createEvent(0, false);
        assertEquals("cudaErrorInvalidResourceHandle", cudaError(() -> gpu.exportEvent(local)),
                "an event made without cudaEventInterprocess");
    }

    @Test
    void freeingMemoryAnotherProcessHasOpenIsRefused() {
        SimulatedDeviceOps a = machine(SimulatedGpus.of(1, MEMORY));
        SimulatedDeviceOps b = keep(a.anotherProcess());
        long p = a.allocate(0, 256);
        long q = b.openMemory(0, a.exportMemory(p));
        IllegalStateException e = assertThrows(IllegalStateException.class, () -> a.free(p));
        assertTrue(e.getMessage().startsWith("cudaFree of 0x" + Long.toHexString(p) + " while simulated process "
                + b.processId() + " still has it open through an IPC handle"), e.getMessage());
        b.closeMemory(q);
        a.free(p);
        assertEquals(0, a.allocatedBytes());
    }

    @Test
    void staleAndForeignHandlesAreRefused() {
        SimulatedDeviceOps a = machine(SimulatedGpus.of(1, MEMORY));
        SimulatedDeviceOps b = keep(a.anotherProcess());
        SimulatedDeviceOps elsewhere = machine(SimulatedGpus.of(1, MEMORY));
        long p = a.allocate(0, 256);
        byte[] handle = a.exportMemory(p);
        CudaException foreign = assertThrows(CudaException.class, () -> elsewhere.openMemory(0, handle));
        assertEquals("cudaErrorInvalidResourceHandle", foreign.errorName());
        assertTrue(foreign.getMessage().contains("not a handle of this simulated machine"), foreign.getMessage());
        a.free(p);
        CudaException stale = assertThrows(CudaException.class, () -> b.openMemory(0, handle));
        assertEquals("cudaErrorInvalidResourceHandle", stale.errorName());
        assertTrue(stale.getMessage().contains("the exporting process freed it, or is gone"), stale.getMessage());
        long again = a.allocate(0, 256);
        byte[] fresh = a.exportMemory(again);
        assertEquals("cudaErrorInvalidResourceHandle", cudaError(() -> b.openMemory(0, handle)),
                "the freed allocation's handle stays refused when its record is handed out again");
        b.closeMemory(b.openMemory(0, fresh));
        long event = a.createEvent(0, true);
        byte[] eventHandle = a.exportEvent(event);
        a.destroyEvent(event);
        assertEquals("cudaErrorInvalidResourceHandle", cudaError(() -> b.openEvent(0, eventHandle)));
        assertEquals("cudaErrorInvalidResourceHandle", cudaError(() -> b.openMemory(0, new byte[64])));
        assertEquals("cudaErrorInvalidResourceHandle", cudaError(() -> b.openEvent(0, handle)), "a memory handle");
    }

    // ------------------------------------------------------------------ kernels

    /** {@code x[i] *= a} for {@code i < n}. */
    static final GpuKernel SCALE = new GpuKernel("scale", """
            extern "C" __global__ void scale(float* x, float a, int n) {
                int i = blockIdx.x * blockDim.x + threadIdx.x;
                if (i < n) x[i] *= a;
            }""", call -> {
                MemorySegment x = call.tensor(0);
                float a = call.f32(1);
                for (int i = 0; i < call.i32(2); i++) {
                    x.setAtIndex(ValueLayout.JAVA_FLOAT, i, x.getAtIndex(ValueLayout.JAVA_FLOAT, i) * a);
                }
            });

    @Test
    void aKernelRunsItsHostCodeInStreamOrderWithItsArguments() {
        SimulatedDeviceOps gpu = machine(SimulatedGpus.of(2, MEMORY));
        long stream = gpu.createStream(1);
        long p = gpu.allocate(1, 16);
        MemorySegment x = gpu.memory(p, 16);
        for (int i = 0; i < 4; i++) {
            x.setAtIndex(ValueLayout.JAVA_FLOAT, i, i);
        }
        DeviceTensor tensor = new DeviceTensor(1, p, DType.F32, stream, 4);
        List<Object> seen = new ArrayList<>();
        GpuKernel record = new GpuKernel("record", "extern \"C\" __global__ void record(long a, double b) {}", call -> {
            seen.add(call.i64(0));
            seen.add(call.f64(1));
            seen.add(call.shape());
        });
        gpu.pause();
        gpu.launch(1, stream, SCALE, GpuKernel.Shape.linear(4, 128), tensor, 10f, 3);
        gpu.launch(1, stream, record, new GpuKernel.Shape(1, 2, 3, 4, 5, 6, 7), 5L, 0.5);
        assertArrayEquals(new float[] {0, 1, 2, 3}, x.toArray(ValueLayout.JAVA_FLOAT), "queued, not run");
        gpu.resume();
        gpu.synchronizeStream(1, stream);
        assertArrayEquals(new float[] {0, 10, 20, 3}, x.toArray(ValueLayout.JAVA_FLOAT), "n = 3 elements scaled");
        assertEquals(List.of(5L, 0.5, new GpuKernel.Shape(1, 2, 3, 4, 5, 6, 7)), seen);

        DeviceTensor onZero = new DeviceTensor(0, gpu.allocate(0, 16), DType.F32, 0, 4);
        assertEquals("kernel scale: argument 0 is on gpu0, the launch is on gpu1", assertThrows(
                IllegalArgumentException.class, () -> gpu.launch(1, stream, SCALE, GpuKernel.Shape.linear(4, 128),
                        onZero, 1f, 4)).getMessage());
        assertEquals("kernel scale: argument 1 is a java.lang.String; pass DeviceTensor, Integer, Long, Float or Double",
                assertThrows(IllegalArgumentException.class, () -> gpu.launch(1, stream, SCALE,
                        GpuKernel.Shape.linear(4, 128), tensor, "2", 4)).getMessage());
        gpu.destroyStream(stream);
    }

    @Test
    void aFailingKernelLeavesTheProcessInError() {
        SimulatedDeviceOps gpu = machine(SimulatedGpus.of(1, MEMORY));
        GpuKernel faulty = new GpuKernel("faulty", "extern \"C\" __global__ void faulty() {}", call -> {
            throw new IndexOutOfBoundsException("x[1000]");
        });
        gpu.launch(0, 0, faulty, GpuKernel.Shape.linear(1, 1));
        CudaException e = assertThrows(CudaException.class, () -> gpu.allocate(0, 256));
        assertEquals("cudaErrorIllegalAddress", e.errorName());
        assertTrue(e.getMessage().contains("simulated kernel faulty failed: java.lang.IndexOutOfBoundsException: x[1000]"),
                e.getMessage());
        assertEquals("cudaErrorIllegalAddress", cudaError(() -> gpu.createStream(0)), "from then on");
        assertEquals("cudaErrorIllegalAddress", cudaError(() -> gpu.queryStream(0, 0)));
    }

    // ------------------------------------------------------------------ the machine's files

    private static List<Path> filesOf(Path dir, long process) throws IOException {
        try (Stream<Path> files = Files.list(dir)) {
            return files.filter(f -> f.getFileName().toString().startsWith("p" + process + ".")).toList();
        }
    }

    @Test
    void closingRemovesAProcesssFilesAndTheMachineItCreated() throws IOException {
        SimulatedDeviceOps gpu = SimulatedDeviceOps.create(SimulatedGpus.of(2, MEMORY));
        Path dir = gpu.machineDirectory();
        try {
            SimulatedDeviceOps other = gpu.anotherProcess();
            other.allocate(1, 4096);
            assertEquals(List.of("p" + other.processId() + ".d1", "p" + other.processId() + ".tab"),
                    filesOf(dir, other.processId()).stream().map(f -> f.getFileName().toString()).sorted().toList());
            other.close();
            other.close();
            assertEquals(List.of(), filesOf(dir, other.processId()));
            assertEquals(MEMORY, gpu.freeBytes(1), "its memory is given back");
            assertEquals(1, filesOf(dir, gpu.processId()).size(), "the creator's table is still there");
        } finally {
            gpu.close();
        }
        assertFalse(Files.exists(dir));
        assertEquals("this simulated GPU process is closed",
                assertThrows(IllegalStateException.class, () -> gpu.allocate(0, 256)).getMessage());
    }

    private static long deadPid() throws IOException, InterruptedException {
        Process p = new ProcessBuilder("true").start();
        assertEquals(0, p.waitFor());
        return p.pid();
    }

    @Test
    void attachingReclaimsTheMemoryOfADeadProcess(@TempDir Path temp) throws Exception {
        Path dir = temp.resolve("machine-of-a-host");
        SimulatedGpus gpus = SimulatedGpus.of(2, MEMORY);
        long dead = deadPid();
        try (SimMachine m = SimMachine.open(dir, gpus)) {
            // what a process that died holding 1 MiB of gpu1 leaves behind
            m.reserve(1, MIB);
            try (SimTable table = SimTable.create(m.tableFile(dead))) {
                table.addUsed(1, MIB);
            }
            Files.createFile(m.memoryFile(dead, 1));
            assertEquals(MIB, m.used(1));
        }
        SimulatedDeviceOps gpu = keep(SimulatedDeviceOps.attach(dir, gpus));
        assertEquals(MEMORY, gpu.freeBytes(1), "the dead process's memory is free again");
        assertEquals(List.of(), filesOf(dir, dead));
        assertTrue(Files.exists(dir.resolve("machine")));
    }

    /** A machine whose processes all died (a crashed test run) is replaced by one of another shape, not refused. */
    @Test
    void anAbandonedMachineOfAnotherShapeIsReplaced(@TempDir Path temp) throws Exception {
        Path dir = temp.resolve("machine-of-a-host");
        long dead = deadPid();
        try (SimMachine m = SimMachine.open(dir, SimulatedGpus.of(1, MEMORY))) {
            m.reserve(0, MIB);
            try (SimTable table = SimTable.create(m.tableFile(dead))) {
                table.addUsed(0, MIB);
            }
        }
        SimulatedGpus other = SimulatedGpus.of(2, 2 * MEMORY);
        SimulatedDeviceOps gpu = keep(SimulatedDeviceOps.attach(dir, other));
        assertEquals(2, gpu.deviceCount());
        assertEquals(2 * MEMORY, gpu.freeBytes(0), "nothing of the old machine is booked on the new one");
        assertEquals(List.of(), filesOf(dir, dead));
    }

    /** Machines left by crashed runtimes are removed when a runtime starts; one in use stays. */
    @Test
    void abandonedMachinesAreRemovedAndLiveOnesStay(@TempDir Path temp) throws Exception {
        Path abandoned = temp.resolve("kiln-gpusim-crashed");
        try (SimMachine m = SimMachine.open(abandoned, SimulatedGpus.of(1, MEMORY));
             SimTable table = SimTable.create(m.tableFile(deadPid()))) {
            table.addUsed(0, 0);
        }
        SimulatedDeviceOps live = keep(SimulatedDeviceOps.attach(temp.resolve("kiln-gpusim-live"), SimulatedGpus.of(1,
                MEMORY)));
        assertEquals(1, SimulatedDeviceOps.removeAbandoned(temp));
        assertFalse(Files.exists(abandoned));
        assertTrue(Files.exists(live.machineDirectory().resolve("machine")));
    }

    @Test
    void attachingTwiceSharesOneViewAndTheLastProcessToLeaveRemovesTheMachine(@TempDir Path temp) {
        Path dir = temp.resolve("machine-of-a-host");
        SimulatedGpus gpus = SimulatedGpus.of(1, MEMORY);
        SimulatedDeviceOps first = SimulatedDeviceOps.attach(dir, gpus);
        SimulatedDeviceOps second = SimulatedDeviceOps.attach(dir, gpus);
        assertSame(first, second);
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> SimulatedDeviceOps.attach(dir, SimulatedGpus.of(2, MEMORY)));
        assertTrue(e.getMessage().contains("has 1 simulated GPUs of " + MEMORY + " bytes, this process asked for 2"),
                e.getMessage());
        SimulatedDeviceOps other = first.anotherProcess();
        long p = first.allocate(0, 256);
        second.close();
        first.free(p); // still open: the first holder has not closed
        first.close();
        assertThrows(IllegalStateException.class, () -> first.allocate(0, 256));
        assertTrue(Files.exists(dir.resolve("machine")), "another process is still on the machine");
        other.close();
        assertFalse(Files.exists(dir), "the last process to leave removed it");
    }

    @Test
    void aWaitOnAnEventOfAProcessThatNeverRecordsWaitsForNothing() {
        SimulatedDeviceOps a = machine(SimulatedGpus.of(1, MEMORY));
        SimulatedDeviceOps b = keep(a.anotherProcess());
        long event = b.openEvent(0, a.exportEvent(a.createEvent(0, true)));
        long stream = b.createStream(0);
        b.waitEvent(0, stream, event);
        assertTrue(b.queryStream(0, stream), "like cudaStreamWaitEvent on an event never recorded");
        b.destroyStream(stream);
    }
    /**
     * The machine's directory has a name other users can work out: one they made (open to them, or a link) is
     * refused rather than used, so that no link they put in it has this process write elsewhere; and such a directory
     * is not removed as an abandoned machine.
     */
    @Test
    void aMachineDirectoryOpenToOthersOrALinkIsRefused(@TempDir Path temp) throws IOException {
        SimulatedGpus gpus = SimulatedGpus.of(1, MEMORY);
        Path open = Files.createDirectory(temp.resolve("kiln-gpusim-open"),
                PosixFilePermissions.asFileAttribute(PosixFilePermissions.fromString("rwx------")));
        Files.setPosixFilePermissions(open, PosixFilePermissions.fromString("rwxrwxrwx"));
        IllegalStateException e = assertThrows(IllegalStateException.class,
                () -> SimulatedDeviceOps.attach(open, gpus));
        assertEquals("the simulated machine directory " + open + " is open to other users (rwxrwxrwx):"
                + " remove it, and let Kiln make it (mode 0700)", e.getMessage());
        try (Stream<Path> made = Files.list(open)) {
            assertEquals(List.of(), made.toList(), "nothing was made in it");
        }

        Path target = Files.createDirectory(temp.resolve("elsewhere"));
        Files.writeString(target.resolve("machine"), "not a machine");
        Path link = Files.createSymbolicLink(temp.resolve("kiln-gpusim-link"), target);
        e = assertThrows(IllegalStateException.class, () -> SimulatedDeviceOps.attach(link, gpus));
        assertTrue(e.getMessage().startsWith("the simulated machine directory " + link + " is a symbolic link"),
                e.getMessage());
        assertEquals(0, SimulatedDeviceOps.removeAbandoned(temp));
        assertEquals("not a machine", Files.readString(target.resolve("machine")), "nothing behind the link removed");
    }

    /**
     * Files in the machine's directory are what its processes wrote: a process file whose id does not fit a long is
     * not a process's, and a machine file whose counts no machine has is not a machine's (and is replaced when no
     * live process uses it), instead of an exception other than the documented ones.
     */
    @Test
    void malformedMachineFilesAreNotTakenForAMachinesOrAProcesss(@TempDir Path temp) throws IOException {
        Path dir = temp.resolve("kiln-gpusim-odd");
        SimulatedGpus gpus = SimulatedGpus.of(1, MEMORY);
        try (SimMachine m = SimMachine.open(dir, gpus)) {
            assertEquals(gpus, m.gpus());
        }
        Files.createFile(dir.resolve("p9999999999999999999.tab")); // 19 digits: more than a long holds
        try (FileChannel machine = FileChannel.open(dir.resolve("machine"), StandardOpenOption.WRITE)) {
            machine.write(ByteBuffer.allocate(4), 12); // a machine of 0 GPUs
        }
        SimulatedDeviceOps gpu = keep(SimulatedDeviceOps.attach(dir, gpus));
        assertEquals(1, gpu.deviceCount(), "the corrupt machine, which no live process used, was replaced");
        assertEquals(MEMORY, gpu.freeBytes(0));
        Files.createFile(dir.resolve("p9999999999999999998.tab"));
        keep(gpu.anotherProcess()); // joining reclaims dead processes, and passes over what is none
        assertEquals(0, SimulatedDeviceOps.removeAbandoned(temp), "the machine is in use");
    }
}
