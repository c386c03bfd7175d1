package dev.kiln.cuda;

import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.lang.foreign.MemorySegment;
import java.util.Arrays;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** Runs only where a GPU is usable; skipped (not passed) elsewhere. */
@Tag("gpu")
class CudaGpuTest {
    @BeforeEach
    void needsGpu() {
        assumeTrue(Cuda.isAvailable(), Cuda.unavailableReason());
        Cuda.setDevice(0);
    }

    @Test
    void deviceMallocMemcpyFreeRoundTrip() {
        int bytes = 1 << 20;
        MemorySegment host = Cuda.mallocHost(bytes);
        MemorySegment back = Cuda.mallocHost(bytes);
        long device = Cuda.malloc(bytes);
        try {
            for (int i = 0; i < bytes; i++) {
                host.set(JAVA_BYTE, i, (byte) (i * 31));
            }
            Cuda.memcpy(device, host.address(), bytes, MemcpyKind.HOST_TO_DEVICE);
            long stream = Cuda.streamCreate(CudaRuntime.cudaStreamNonBlocking);
            Cuda.memcpyAsync(back.address(), device, bytes, MemcpyKind.DEVICE_TO_HOST, stream);
            Cuda.streamSynchronize(stream);
            Cuda.streamDestroy(stream);
            assertEquals(-1L, host.mismatch(back));
            Cuda.memset(device, 7, bytes);
            Cuda.memcpy(back.address(), device, bytes, MemcpyKind.DEVICE_TO_HOST);
            assertEquals(7, back.get(JAVA_BYTE, bytes - 1));
        } finally {
            Cuda.free(device);
            Cuda.freeHost(host);
            Cuda.freeHost(back);
        }
    }

    @Test
    void eventsTimeACopy() {
        long device = Cuda.malloc(1 << 20);
        long start = Cuda.eventCreate(CudaRuntime.cudaEventDefault);
        long end = Cuda.eventCreate(CudaRuntime.cudaEventDefault);
        try {
            Cuda.eventRecord(start, 0);
            Cuda.memset(device, 0, 1 << 20);
            Cuda.eventRecord(end, 0);
            Cuda.eventSynchronize(end);
            assertTrue(Cuda.eventElapsedMillis(start, end) >= 0f);
        } finally {
            Cuda.eventDestroy(start);
            Cuda.eventDestroy(end);
            Cuda.free(device);
        }
    }

    @Test
    void ipcHandlesExportAsSixtyFourBytesAndTheExporterCannotOpenItsOwn() {
        long device = Cuda.malloc(2 << 20);
        long event = Cuda.eventCreate(CudaRuntime.cudaEventInterprocess | CudaRuntime.cudaEventDisableTiming);
        try {
            byte[] memHandle = Cuda.ipcGetMemHandle(device);
            assertEquals(64, memHandle.length);
            assertFalse(Arrays.equals(new byte[64], memHandle), "an all-zero handle");
            assertArrayEquals(memHandle, Cuda.ipcGetMemHandle(device));
            // CUDA refuses to map a memory handle in the process that exported it.
            assertThrows(CudaException.class, () -> Cuda.ipcOpenMemHandle(memHandle));
            byte[] eventHandle = Cuda.ipcGetEventHandle(event);
            assertEquals(64, eventHandle.length);
        } finally {
            Cuda.eventDestroy(event);
            Cuda.free(device);
        }
    }

    @Test
    void aDeviceIsNotItsOwnPeerAndAMissingPeerIsAnError() {
        assertFalse(Cuda.canAccessPeer(0, 0), "CUDA reports 0 for device == peer");
        CudaException e = assertThrows(CudaException.class, () -> Cuda.canAccessPeer(0, Cuda.deviceCount() + 100));
        assertEquals("cudaErrorInvalidDevice", e.errorName());
    }

    @Test
    void queriesReportCompletedWorkWithoutBlocking() {
        long stream = Cuda.streamCreate(CudaRuntime.cudaStreamNonBlocking);
        long event = Cuda.eventCreate(CudaRuntime.cudaEventDisableTiming);
        long device = Cuda.malloc(1 << 20);
        MemorySegment host = Cuda.mallocHost(1 << 20);
        try {
            assertTrue(Cuda.eventQuery(event), "an event never recorded captures no work");
            Cuda.memcpyAsync(host.address(), device, 1 << 20, MemcpyKind.DEVICE_TO_HOST, stream);
            Cuda.eventRecord(event, stream);
            Cuda.streamSynchronize(stream);
            assertTrue(Cuda.streamQuery(stream));
            assertTrue(Cuda.eventQuery(event));
        } finally {
            Cuda.freeHost(host);
            Cuda.free(device);
            Cuda.eventDestroy(event);
            Cuda.streamDestroy(stream);
        }
    }

    @Test
    void driverReportsUuidMemoryAndThePrimaryContextSetDeviceMadeCurrent() {
        assumeTrue(CudaDriver.isAvailable(), CudaDriver.unavailableReason());
        String uuid = CudaDriver.deviceUuid(0);
        assertTrue(uuid.matches("GPU-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), uuid);
        assertNotEquals("GPU-00000000-0000-0000-0000-000000000000", uuid);
        assertEquals(uuid, CudaDriver.deviceUuid(0));
        assertTrue(CudaDriver.totalMemory(0) >= Cuda.memoryInfo().freeBytes());
        assertNotEquals(0L, CudaDriver.currentContext(), "Cuda.setDevice(0) makes the primary context current");
        assertThrows(CudaDriverException.class, () -> CudaDriver.deviceUuid(Cuda.deviceCount() + 100));
    }

    @Test
    void errorsAreTranslated() {
        CudaException e = assertThrows(CudaException.class, () -> Cuda.setDevice(Cuda.deviceCount() + 100));
        assertEquals("cudaErrorInvalidDevice", e.errorName());
        assertTrue(Cuda.memoryInfo().totalBytes() > 0);
    }
}
