package dev.kiln.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.concurrent.FutureTask;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/**
 * Compiles a kernel with NVRTC and runs it through the driver API on device 0; runs only where
 * CUDA, the driver API and NVRTC are all usable, skipped (not passed) elsewhere.
 */
@Tag("gpu")
class NvrtcGpuTest {
    private static final int COUNT = 1000;

    private byte[] ptx;

    @BeforeEach
    void needsGpuDriverAndNvrtc() {
        assumeTrue(Cuda.isAvailable(), Cuda.unavailableReason());
        assumeTrue(CudaDriver.isAvailable(), CudaDriver.unavailableReason());
        assumeTrue(Nvrtc.isAvailable(), Nvrtc.unavailableReason());
        Cuda.setDevice(0);
        int major = Cuda.deviceAttribute(DeviceAttribute.COMPUTE_CAPABILITY_MAJOR, 0);
        int minor = Cuda.deviceAttribute(DeviceAttribute.COMPUTE_CAPABILITY_MINOR, 0);
        ptx = Nvrtc.compileToPtx(NvrtcTest.ADD_ONE, "add_one.cu",
                List.of("--gpu-architecture=compute_" + major + minor));
    }

    @Test
    void compiledKernelAddsOneToEveryElement() {
        long bytes = (long) COUNT * Float.BYTES;
        MemorySegment host = Cuda.mallocHost(bytes);
        long device = Cuda.malloc(bytes);
        long stream = Cuda.streamCreate(CudaRuntime.cudaStreamNonBlocking);
        long module = CudaDriver.loadModule(ptx);
        try (Arena arena = Arena.ofConfined()) {
            for (int i = 0; i < COUNT; i++) {
                host.setAtIndex(JAVA_FLOAT, i, i);
            }
            Cuda.memcpy(device, host.address(), bytes, MemcpyKind.HOST_TO_DEVICE);
            long addOne = CudaDriver.function(module, "add_one");
            MemorySegment x = arena.allocate(ADDRESS);
            x.set(ADDRESS, 0, MemorySegment.ofAddress(device));
            MemorySegment n = arena.allocate(JAVA_INT);
            n.set(JAVA_INT, 0, COUNT);
            MemorySegment params = arena.allocate(ADDRESS, 2);
            params.setAtIndex(ADDRESS, 0, x);
            params.setAtIndex(ADDRESS, 1, n);
            CudaDriver.launch(addOne, (COUNT + 255) / 256, 1, 1, 256, 1, 1, 0, stream, params);
            Cuda.streamSynchronize(stream);
            Cuda.memcpy(host.address(), device, bytes, MemcpyKind.DEVICE_TO_HOST);
            for (int i = 0; i < COUNT; i++) {
                assertEquals(i + 1f, host.getAtIndex(JAVA_FLOAT, i), "element " + i);
            }
            CudaDriverException missing = assertThrows(CudaDriverException.class,
                    () -> CudaDriver.function(module, "add_two"));
            assertEquals("CUDA_ERROR_NOT_FOUND", missing.errorName());
        } finally {
            CudaDriver.unloadModule(module);
            Cuda.streamDestroy(stream);
            Cuda.free(device);
            Cuda.freeHost(host);
        }
    }

    @Test
    void aThreadWithoutAContextIsToldToSetTheDevice() throws Exception {
        FutureTask<CudaDriverException> onFreshThread = new FutureTask<>(() -> {
            assertEquals(0L, CudaDriver.currentContext(), "a new thread has no current context");
            return assertThrows(CudaDriverException.class, () -> CudaDriver.loadModule(ptx));
        });
        Thread thread = new Thread(onFreshThread, "no-cuda-context");
        thread.start();
        CudaDriverException e = onFreshThread.get();
        assertEquals("CUDA_ERROR_INVALID_CONTEXT", e.errorName());
        assertTrue(e.getMessage().contains("call Cuda.setDevice(device) on it first"), e.getMessage());
    }
}
