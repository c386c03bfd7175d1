package dev.kiln.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.MemorySegment;
import java.nio.charset.StandardCharsets;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/** What every machine without a usable CUDA driver (CI) must see. */
class CudaDriverTest {
    private static final MemorySegment NULL = MemorySegment.NULL;

    @Test
    void missingLibcudaIsDiagnosedWithSonamesFoldersAndTheProperty() {
        assumeFalse(CudaDriverLibrary.isLoaded(), "libcuda is loaded here");
        assertEquals("no libcuda: looked for libcuda.so.1 on the dynamic linker path (LD_LIBRARY_PATH, ld.so.cache)"
                + " and in /usr/lib/x86_64-linux-gnu, /usr/lib64, /usr/local/cuda/compat, /usr/lib/wsl/lib"
                + "; set -Dkiln.cuda.driver.path=/path/to/libcuda.so.1 (the file or its folder)",
                CudaDriverLibrary.loadFailure());
        assertFalse(CudaDriver.isAvailable());
        assertEquals(CudaDriverLibrary.loadFailure(), CudaDriver.unavailableReason());
    }

    @Test
    void aLoadedDriverThatCannotInitialiseSaysWhatCuInitReturned() {
        assumeTrue(CudaDriverLibrary.isLoaded(), CudaDriverLibrary.loadFailure());
        assumeFalse(CudaDriver.isAvailable(), "the CUDA driver is available here");
        String reason = CudaDriver.unavailableReason();
        assertTrue(reason.matches("CUDA driver unusable: cuInit\\(0\\) returned CUDA_ERROR_[A-Z_]+ \\(\\d+\\): .+"), reason);
        assertTrue(reason.contains("(libcuda from " + CudaDriverLibrary.source() + ")"), reason);
    }

    @Test
    void everyFacadeCallThrowsTheDiagnosis() {
        assumeFalse(CudaDriver.isAvailable(), "the CUDA driver is available here");
        List<Executable> calls = List.of(() -> CudaDriver.deviceUuid(0), () -> CudaDriver.totalMemory(0),
                CudaDriver::currentContext, () -> CudaDriver.setCurrentContext(0), () -> CudaDriver.loadModule(new byte[] {0}),
                () -> CudaDriver.function(1, "add_one"), () -> CudaDriver.unloadModule(1),
                () -> CudaDriver.launch(1, 1, 1, 1, 1, 1, 1, 0, 0, NULL));
        for (Executable call : calls) {
            NativeUnavailableException e = assertThrows(NativeUnavailableException.class, call);
            assertEquals(CudaDriver.unavailableReason(), e.getMessage());
        }
    }

    @Test
    void everyRawBindingThrowsTheLoadFailure() {
        assumeFalse(CudaDriverLibrary.isLoaded(), "libcuda is loaded here");
        List<Executable> calls = List.of(() -> CudaDriverLibrary.cuInit(0), () -> CudaDriverLibrary.cuDeviceGet(NULL, 0),
                () -> CudaDriverLibrary.cuDeviceGetUuid_v2(NULL, 0), () -> CudaDriverLibrary.cuDeviceTotalMem_v2(NULL, 0),
                () -> CudaDriverLibrary.cuCtxGetCurrent(NULL), () -> CudaDriverLibrary.cuCtxSetCurrent(NULL),
                () -> CudaDriverLibrary.cuModuleLoadData(NULL, NULL),
                () -> CudaDriverLibrary.cuModuleGetFunction(NULL, NULL, NULL), () -> CudaDriverLibrary.cuModuleUnload(NULL),
                () -> CudaDriverLibrary.cuLaunchKernel(NULL, 1, 1, 1, 1, 1, 1, 0, NULL, NULL, NULL),
                () -> CudaDriverLibrary.cuGetErrorName(0, NULL), () -> CudaDriverLibrary.cuGetErrorString(0, NULL));
        for (Executable call : calls) {
            NativeUnavailableException e = assertThrows(NativeUnavailableException.class, call);
            assertEquals(CudaDriverLibrary.loadFailure(), e.getMessage());
        }
    }

    @Test
    void uuidLayoutIs16Bytes() {
        assertEquals(16, CudaDriverLibrary.CUuuid.byteSize());
        assertEquals(CudaDriver.UUID_BYTES, CudaDriverLibrary.CUuuid.byteSize());
    }

    @Test
    void uuidIsFormattedLikeNvidiaSmi() {
        byte[] uuid = {(byte) 0x8f, 0x1a, 0x02, (byte) 0xc3, 0x4d, (byte) 0xe5, 0x06, 0x7b, (byte) 0x98, 0x09,
                (byte) 0xaa, (byte) 0xbb, (byte) 0xcc, (byte) 0xdd, (byte) 0xee, (byte) 0xff};
        String text = CudaDriver.uuidString(uuid);
        assertEquals("GPU-8f1a02c3-4de5-067b-9809-aabbccddeeff", text);
        assertTrue(text.matches("GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), text);
        assertEquals("GPU-00000000-0000-0000-0000-000000000000", CudaDriver.uuidString(new byte[16]));
        assertThrows(IllegalArgumentException.class, () -> CudaDriver.uuidString(new byte[15]));
    }

    @Test
    void ptxIsNulTerminatedOnceAndOnlyWhenItIsNot() {
        byte[] ptx = ".version 8.0\n".getBytes(StandardCharsets.US_ASCII);
        byte[] terminated = CudaDriver.nulTerminated(ptx);
        assertEquals(ptx.length + 1, terminated.length);
        assertEquals(0, terminated[ptx.length]);
        assertArrayEquals(ptx, java.util.Arrays.copyOf(terminated, ptx.length));
        assertSame(terminated, CudaDriver.nulTerminated(terminated), "already terminated: no copy, no second NUL");
        assertArrayEquals(new byte[] {0}, CudaDriver.nulTerminated(new byte[0]));
    }

    @Test
    void driverExceptionCarriesCodeNameAndDescription() {
        CudaDriverException e = new CudaDriverException("cuModuleLoadData", 218, "CUDA_ERROR_INVALID_PTX",
                "a PTX JIT compilation failed");
        assertEquals(218, e.code());
        assertEquals("CUDA_ERROR_INVALID_PTX", e.errorName());
        assertEquals("cuModuleLoadData failed: CUDA_ERROR_INVALID_PTX (218): a PTX JIT compilation failed",
                e.getMessage());
    }
}
