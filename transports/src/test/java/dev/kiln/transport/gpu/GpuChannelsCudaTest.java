package dev.kiln.transport.gpu;

import dev.kiln.compiler.ExecutionPlan.ChannelSpec;
import dev.kiln.cuda.Cuda;
import dev.kiln.cuda.CudaDriver;
import dev.kiln.cuda.MemcpyKind;
import dev.kiln.graph.Transport;
import dev.kiln.tensor.DType;
import dev.kiln.tensor.DeviceTensor;
import dev.kiln.tensor.Tensor;
import dev.kiln.transport.ValueCodec;
import dev.kiln.transport.Waker;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.Timeout;
import org.junit.jupiter.api.io.TempDir;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.file.Path;

import static dev.kiln.transport.gpu.SameDeviceChannelTest.spec;
import static dev.kiln.transport.gpu.SameDeviceChannelTest.wakers;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The GPU channels over the real CUDA runtime. The GPU tests run only where CUDA works and are reported as
 * skipped elsewhere; <b>they have not run on a GPU yet</b>. CUDA IPC needs two processes and NCCL channels two
 * GPUs, so those are covered by the simulated tests only.
 */
@Timeout(120)
class GpuChannelsCudaTest {

    @TempDir
    Path dir;

    @Test
    void withoutCudaTheDeviceOpsRefuseToStartAndSayWhy() {
        assumeFalse(Cuda.isAvailable(), "CUDA is available here");
        IllegalStateException e = assertThrows(IllegalStateException.class, CudaDeviceOps::new);
        assertEquals("GPU channels need CUDA: " + Cuda.unavailableReason(), e.getMessage());
    }

    @Test
    @Tag("gpu")
    void sameDeviceChannelCopiesOnTheGpu() {
        assumeTrue(Cuda.isAvailable(), () -> "no GPU: " + Cuda.unavailableReason());
        try (CudaDeviceOps ops = new CudaDeviceOps()) {
            long src = ops.allocate(0, 4096);
            try (SameDeviceChannel ch = new SameDeviceChannel(spec(Transport.GPU_SAME_DEVICE, 2, 4096, 1), ops, 0,
                    new long[] {0}, new Waker(), wakers(1))) {
                for (long seq = 0; seq < 5; seq++) {
                    ops.synchronizeStream(0, 0); // the last copy from the source has run
                    upload(src, seq);
                    assertTrue(ch.offer(seq, new DeviceTensor(0, src, DType.I32, 0, 1024)));
                    DeviceTensor v = (DeviceTensor) ch.poll(0, seq);
                    ops.synchronizeStream(0, v.stream());
                    assertArrayEquals(pattern(seq), download(v.pointer()), "sequence " + seq);
                    ch.release(0, seq);
                }
            } finally {
                ops.free(src);
            }
        }
    }

    @Test
    @Tag("gpu")
    void stagedChannelReachesAGpuReaderAndAHostReader() throws Exception {
        assumeTrue(Cuda.isAvailable(), () -> "no GPU: " + Cuda.unavailableReason());
        ChannelSpec spec = spec(Transport.STAGED, 2, 4096, 2);
        ValueCodec codec = new ValueCodec();
        try (CudaDeviceOps ops = new CudaDeviceOps()) {
            long src = ops.allocate(0, 4096);
            try (StagedChannel w = StagedChannel.createWriter(spec, dir, "staged-gpu", codec, ops, 0, null, new Waker[2]);
                 StagedChannel gpuReader = StagedChannel.openReader(spec, w.path(), codec, ops, 0, 0, 0, null);
                 StagedChannel hostReader = StagedChannel.openReader(spec, w.path(), codec, ops, 1, -1, 0, null)) {
                for (long seq = 0; seq < 5; seq++) {
                    upload(src, seq);
                    assertTrue(w.offer(seq, new DeviceTensor(0, src, DType.I32, 0, 1024)));
                    DeviceTensor d = (DeviceTensor) gpuReader.poll(0, seq);
                    ops.synchronizeStream(0, d.stream());
                    assertArrayEquals(pattern(seq), download(d.pointer()));
                    assertArrayEquals(pattern(seq), ((Tensor) hostReader.poll(1, seq)).toIntArray());
                    gpuReader.release(0, seq);
                    hostReader.release(1, seq);
                }
            } finally {
                ops.free(src);
            }
        }
    }

    /** Stream 0 of device 1 is device 1's default stream, from a thread whose current device is 0. */
    @Test
    @Tag("gpu")
    void aSameDeviceChannelOnTheSecondGpuUsesItsDefaultStream() {
        assumeTrue(Cuda.isAvailable(), () -> "no GPU: " + Cuda.unavailableReason());
        assumeTrue(Cuda.deviceCount() >= 2, "one GPU only");
        try (CudaDeviceOps ops = new CudaDeviceOps()) {
            ops.setCurrentDevice(0);
            long src = ops.allocate(1, 4096);
            try (SameDeviceChannel ch = new SameDeviceChannel(spec(Transport.GPU_SAME_DEVICE, 2, 4096, 1), ops, 1,
                    new long[] {0}, new Waker(), wakers(1))) {
                upload(src, 3);
                assertTrue(ch.offer(0, new DeviceTensor(1, src, DType.I32, 0, 1024)));
                DeviceTensor v = (DeviceTensor) ch.poll(0, 0);
                ops.synchronizeStream(1, v.stream());
                assertArrayEquals(pattern(3), download(v.pointer()));
                assertEquals(0, ops.currentDevice(), "calls name their device and leave the current one");
                ch.release(0, 0);
            } finally {
                ops.free(src);
            }
        }
    }

    /** A kernel compiled with NVRTC and launched through the driver API, in stream order after a copy. */
    @Test
    @Tag("gpu")
    void aKernelRunsOnTheGpu() {
        assumeTrue(Cuda.isAvailable(), () -> "no GPU: " + Cuda.unavailableReason());
        try (CudaDeviceOps ops = new CudaDeviceOps()) {
            long p = ops.allocate(0, 4096);
            try (Arena arena = Arena.ofConfined()) {
                MemorySegment host = arena.allocate(ValueLayout.JAVA_FLOAT, 1024);
                float[] want = new float[1024];
                for (int i = 0; i < 1024; i++) {
                    host.setAtIndex(ValueLayout.JAVA_FLOAT, i, i);
                    want[i] = i < 1000 ? 2f * i : i;
                }
                ops.copyAsync(0, p, host.address(), 4096, MemcpyKind.HOST_TO_DEVICE, 0);
                ops.launch(0, 0, SimulatedDeviceOpsTest.SCALE, GpuKernel.Shape.linear(1024, 256),
                        new DeviceTensor(0, p, DType.F32, 0, 1024), 2f, 1000);
                ops.copyAsync(0, host.address(), p, 4096, MemcpyKind.DEVICE_TO_HOST, 0);
                ops.synchronizeStream(0, 0);
                assertArrayEquals(want, host.toArray(ValueLayout.JAVA_FLOAT), "the first 1000 elements doubled");
            } finally {
                ops.free(p);
            }
        }
    }

    private static int[] pattern(long seq) {
        int[] v = new int[1024];
        for (int i = 0; i < v.length; i++) {
            v[i] = (int) (seq * 1_000_000 + i);
        }
        return v;
    }

    @Test
    @Tag("gpu")
    void aThreadWithoutAContextIsLeftWithoutOneAndAThreadWithOneKeepsItsDevice() throws Exception {
        assumeTrue(Cuda.isAvailable(), () -> "no GPU: " + Cuda.unavailableReason());
        try (CudaDeviceOps ops = new CudaDeviceOps()) {
            int last = ops.deviceCount() - 1;
            long[] seen = new long[3];
            Thread fresh = Thread.ofPlatform().start(() -> {
                seen[0] = CudaDriver.currentContext();
                long pointer = ops.allocate(last, 4096);
                seen[1] = CudaDriver.currentContext();
                ops.free(pointer);
            });
            fresh.join(60_000);
            assertEquals(0L, seen[0], "a new thread has no CUDA context");
            assertEquals(0L, seen[1], "allocating on gpu" + last + " left the thread without a context");

            Thread bound = Thread.ofPlatform().start(() -> {
                Cuda.setDevice(0);
                long pointer = ops.allocate(last, 4096);
                seen[2] = ops.currentDevice();
                ops.free(pointer);
            });
            bound.join(60_000);
            assertEquals(0L, seen[2], "the thread's device is gpu0 again after allocating on gpu" + last);
        }
    }

    private static void upload(long device, long seq) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocateFrom(ValueLayout.JAVA_INT, pattern(seq));
            Cuda.memcpy(device, host.address(), host.byteSize(), MemcpyKind.HOST_TO_DEVICE);
        }
    }

    private static int[] download(long device) {
        try (Arena arena = Arena.ofConfined()) {
            MemorySegment host = arena.allocate(4096);
            Cuda.memcpy(host.address(), device, 4096, MemcpyKind.DEVICE_TO_HOST);
            return host.toArray(ValueLayout.JAVA_INT);
        }
    }
}
