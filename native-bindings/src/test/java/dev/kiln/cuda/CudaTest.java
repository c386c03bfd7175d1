package dev.kiln.cuda;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeFalse;

import java.lang.foreign.MemorySegment;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;

/** What every machine without a usable GPU (CI) must see. */
class CudaTest {
    private static final MemorySegment NULL = MemorySegment.NULL;

    @Test
    void unavailableWithADiagnosisThatSaysWhatToDo() {
        assumeFalse(Cuda.isAvailable(), "CUDA is available here");
        String reason = Cuda.unavailableReason();
        assertFalse(reason.isBlank());
        if (!CudaRuntime.isLoaded()) {
            assertTrue(reason.startsWith("no libcudart: looked for libcudart.so.13, libcudart.so.12"), reason);
            assertTrue(reason.contains("/usr/local/cuda/lib64") && reason.contains("/usr/local/cuda-13*/lib64"), reason);
            assertTrue(reason.contains("set -Dkiln.cudart.path="), reason);
            assertEquals(reason, CudaRuntime.loadFailure());
        }
    }

    @Test
    void everyFacadeCallThrowsTheDiagnosis() {
        assumeFalse(Cuda.isAvailable(), "CUDA is available here");
        List<Executable> calls = List.of(Cuda::deviceCount, () -> Cuda.setDevice(0), Cuda::device,
                () -> Cuda.deviceAttribute(DeviceAttribute.COMPUTE_CAPABILITY_MAJOR, 0), Cuda::driverVersion,
                Cuda::runtimeVersion, Cuda::memoryInfo, () -> Cuda.malloc(16), () -> Cuda.free(1),
                () -> Cuda.mallocHost(16), () -> Cuda.freeHost(NULL), () -> Cuda.hostRegister(NULL, 0),
                () -> Cuda.hostUnregister(NULL), () -> Cuda.memcpy(1, 2, 3, MemcpyKind.DEFAULT),
                () -> Cuda.memcpyAsync(1, 2, 3, MemcpyKind.DEFAULT, 0), () -> Cuda.memset(1, 0, 1),
                () -> Cuda.streamCreate(0), () -> Cuda.streamDestroy(1), () -> Cuda.streamSynchronize(0),
                () -> Cuda.streamWaitEvent(0, 1), () -> Cuda.eventCreate(0), () -> Cuda.eventRecord(1, 0),
                () -> Cuda.eventSynchronize(1), () -> Cuda.eventElapsedMillis(1, 2), () -> Cuda.eventDestroy(1),
                () -> Cuda.ipcGetMemHandle(1), () -> Cuda.ipcOpenMemHandle(new byte[64]),
                () -> Cuda.ipcCloseMemHandle(1), () -> Cuda.ipcGetEventHandle(1),
                () -> Cuda.ipcOpenEventHandle(new byte[64]), () -> Cuda.canAccessPeer(0, 1),
                () -> Cuda.eventQuery(1), () -> Cuda.streamQuery(0));
        for (Executable call : calls) {
            NativeUnavailableException e = assertThrows(NativeUnavailableException.class, call);
            assertEquals(Cuda.unavailableReason(), e.getMessage());
        }
    }

    @Test
    void everyRawBindingThrowsTheLoadFailure() {
        assumeFalse(CudaRuntime.isLoaded(), "libcudart is loaded here");
        List<Executable> calls = List.of(() -> CudaRuntime.cudaGetDeviceCount(NULL),
                () -> CudaRuntime.cudaDeviceGetAttribute(NULL, 75, 0), () -> CudaRuntime.cudaSetDevice(0),
                () -> CudaRuntime.cudaGetDevice(NULL), () -> CudaRuntime.cudaDriverGetVersion(NULL),
                () -> CudaRuntime.cudaRuntimeGetVersion(NULL), () -> CudaRuntime.cudaMalloc(NULL, 1),
                () -> CudaRuntime.cudaFree(NULL), () -> CudaRuntime.cudaMallocHost(NULL, 1),
                () -> CudaRuntime.cudaFreeHost(NULL), () -> CudaRuntime.cudaHostRegister(NULL, 1, 0),
                () -> CudaRuntime.cudaHostUnregister(NULL), () -> CudaRuntime.cudaMemcpy(NULL, NULL, 1, 4),
                () -> CudaRuntime.cudaMemcpyAsync(NULL, NULL, 1, 4, NULL), () -> CudaRuntime.cudaMemset(NULL, 0, 1),
                () -> CudaRuntime.cudaStreamCreateWithFlags(NULL, 0), () -> CudaRuntime.cudaStreamDestroy(NULL),
                () -> CudaRuntime.cudaStreamSynchronize(NULL), () -> CudaRuntime.cudaStreamWaitEvent(NULL, NULL, 0),
                () -> CudaRuntime.cudaEventCreateWithFlags(NULL, 0), () -> CudaRuntime.cudaEventRecord(NULL, NULL),
                () -> CudaRuntime.cudaEventSynchronize(NULL), () -> CudaRuntime.cudaEventElapsedTime(NULL, NULL, NULL),
                () -> CudaRuntime.cudaEventDestroy(NULL), () -> CudaRuntime.cudaIpcGetMemHandle(NULL, NULL),
                () -> CudaRuntime.cudaIpcOpenMemHandle(NULL, NULL, 1), () -> CudaRuntime.cudaIpcCloseMemHandle(NULL),
                () -> CudaRuntime.cudaIpcGetEventHandle(NULL, NULL), () -> CudaRuntime.cudaIpcOpenEventHandle(NULL, NULL),
                () -> CudaRuntime.cudaMemGetInfo(NULL, NULL), () -> CudaRuntime.cudaGetErrorName(0),
                () -> CudaRuntime.cudaGetErrorString(0), () -> CudaRuntime.cudaDeviceCanAccessPeer(NULL, 0, 1),
                () -> CudaRuntime.cudaEventQuery(NULL), () -> CudaRuntime.cudaStreamQuery(NULL));
        for (Executable call : calls) {
            NativeUnavailableException e = assertThrows(NativeUnavailableException.class, call);
            assertEquals(CudaRuntime.loadFailure(), e.getMessage());
        }
    }

    @Test
    void errorNamesComeFromTheRuntimeWhenItLoadsEvenWithoutADriver() {
        org.junit.jupiter.api.Assumptions.assumeTrue(CudaRuntime.isLoaded(), CudaRuntime.loadFailure());
        assertEquals("cudaErrorMemoryAllocation", Cuda.errorName(2));
        assertEquals("cudaErrorInsufficientDriver", Cuda.errorName(CudaRuntime.cudaErrorInsufficientDriver));
        assertEquals("cudaErrorNoDevice", Cuda.errorName(CudaRuntime.cudaErrorNoDevice));
        assertEquals("cudaErrorNotReady", Cuda.errorName(CudaRuntime.cudaErrorNotReady));
        assertFalse(Cuda.errorString(2).isBlank());
    }

    @Test
    void ipcHandleLayoutsAre64Bytes() {
        assertEquals(64, CudaRuntime.cudaIpcMemHandle_t.byteSize());
        assertEquals(64, CudaRuntime.cudaIpcEventHandle_t.byteSize());
        assertEquals(Cuda.IPC_HANDLE_BYTES, CudaRuntime.cudaIpcMemHandle_t.byteSize());
    }

    @Test
    void enumsCarryTheirCValues() {
        assertEquals(Map.of(MemcpyKind.HOST_TO_HOST, 0, MemcpyKind.HOST_TO_DEVICE, 1, MemcpyKind.DEVICE_TO_HOST, 2,
                MemcpyKind.DEVICE_TO_DEVICE, 3, MemcpyKind.DEFAULT, 4), cValues(MemcpyKind.values()));
        assertEquals(16, DeviceAttribute.MULTI_PROCESSOR_COUNT.cValue());
        assertEquals(41, DeviceAttribute.UNIFIED_ADDRESSING.cValue());
        assertEquals(75, DeviceAttribute.COMPUTE_CAPABILITY_MAJOR.cValue());
        assertEquals(76, DeviceAttribute.COMPUTE_CAPABILITY_MINOR.cValue());
    }

    private static Map<MemcpyKind, Integer> cValues(MemcpyKind[] kinds) {
        return java.util.Arrays.stream(kinds).collect(java.util.stream.Collectors.toMap(k -> k, MemcpyKind::cValue));
    }

    @Test
    void cudaExceptionCarriesCodeNameAndDescription() {
        CudaException e = new CudaException("cudaMalloc", 2, "cudaErrorMemoryAllocation", "out of memory");
        assertEquals(2, e.code());
        assertEquals("cudaErrorMemoryAllocation", e.errorName());
        assertEquals("cudaMalloc failed: cudaErrorMemoryAllocation (2): out of memory", e.getMessage());
    }
}
